/**
 * `deno task bench`: every benchmark that runs on this machine. Prints a table and writes
 * `bench/out/results.json`. GPU-host benchmarks are `deno task bench:gpu`.
 * @module
 */
import { benchCompile } from "./compile_bench.ts";
import { benchEngine } from "./engine_bench.ts";
import { benchJitResolve, formatJitResolve } from "./jit_resolve.ts";

const root = new URL("../", import.meta.url).pathname;
const cores = navigator.hardwareConcurrency;
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  deno: Deno.version.deno,
  cores,
};

console.log(`Kiln benchmarks — ${cores} cores, Deno ${Deno.version.deno}\n`);
console.log("cold compile (fresh process each run, median of 3):");
const compiles = [];
for (
  const [model, q] of [["llama3-8b", "q4f16_1"], ["llama2-70b", "q4f16_1"], [
    "llama3.2-1b",
    "q4f16_1",
  ], ["qwen2.5-0.5b", "q4f16_1"]]
) {
  const r = await benchCompile(`${root}bench/configs/${model}`, q, "webgpu");
  compiles.push({ ...r, model });
  console.log(
    `  ${model.padEnd(14)} ${q} webgpu: compile() ${r.compileMs.toFixed(0)} ms, whole process ${
      r.processMs.toFixed(0)
    } ms, ${r.decodeDispatches} dispatches per decode step`,
  );
  console.log(
    `    stages: ${Object.entries(r.stages).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ")} ms`,
  );
}
results.compile = compiles;

console.log(
  "\nJIT resolve (fresh process each run; warm = cache hit: sha256 verify + import), q4f16_1:",
);
const jits = [];
for (
  const [label, opts] of [
    ["example model (HF folder: compile + convert cold)", { variant: "example" }],
    ["Llama-3-8B config (library only, webgpu-generic)", {
      configDir: `${root}bench/configs/llama3-8b`,
      target: "webgpu-generic",
    }],
  ] as const
) {
  const r = await benchJitResolve({ warm: 5, ...opts });
  jits.push({ label, ...r });
  console.log(`  ${label}:\n    ${formatJitResolve(r).replaceAll("\n", "\n    ")}`);
}
results.jit = jits;

console.log("\nengine, example model (hidden 64, 2 layers, vocab 128256), q4f16_1, greedy:");
const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
const engines = [];
for (const target of adapter ? ["cpu", "webgpu"] as const : ["cpu"] as const) {
  const r = await benchEngine(
    target,
    target === "cpu" ? "CPU kernels" : adapter!.info.description || adapter!.info.vendor,
  );
  engines.push(r);
  console.log(
    `  ${target.padEnd(6)} (${r.device}): TTFT ${r.ttftMs.toFixed(0)} ms, decode b1 ${
      r.decodeTokPerSecB1.toFixed(1)
    } tok/s, aggregate b16 ${
      r.aggregateTokPerSecB16.toFixed(1)
    } tok/s (max batch ${r.maxBatchSize})`,
  );
}
results.engine = engines;

await Deno.mkdir(`${root}bench/out`, { recursive: true });
await Deno.writeTextFile(`${root}bench/out/results.json`, JSON.stringify(results, null, 2));
console.log(`\nwrote bench/out/results.json`);
