/**
 * `deno task bench:gpu`: Kiln side by side with the GPU's ceilings, in one run on the GPU host.
 * 1. ceilings: read bandwidth (timestamp queries over a ~2 GiB buffer), dispatch cost, FMA;
 * 2. each q4f16_1 decode GEMV alone (GB/s, ratio to the read ceiling);
 * 3. Llama-3-8B, Llama-3.2-1B, Qwen2.5-0.5B shapes with synthetic weights made on the GPU:
 *    prefill, raw decode (kernel time vs queued GPU span vs wall), KilnEngine end to end,
 *    rooflines, dispatches, pipeline creation.
 * Prints a table last; writes JSON to `$OUT/gpu.json` when OUT is set, else `bench/out/gpu.json`.
 * Options: `--small` (tiny shapes, for lavapipe), `--models=8b,1b,0.5b` (`none`: ceilings and
 * GEMVs only), `--no-gemv`, `--opt=<flags>` (compile flags, e.g. `fuse_norm_matmul=0`),
 * `--q8-sweep` (the q8 GEMV under several tunings), `--batches=1,16` (the decode batches timed),
 * `--no-engine` (no KilnEngine runs), `--prompt=4096` (prompt tokens; default 512),
 * `--decode=512` and `--pairs=7` (the engine runs' long generations and (short, long) pairs),
 * `--boundaries` (what a pass, a command buffer, a write or a copy between decode steps costs
 * the GPU: the step replayed 16 times each way, printed).
 *
 * On the GPU host (no network): carry `.gl` (Vulkan loader .debs), `.carry` (deno.xz) and a
 * `node_modules` holding only esbuild-wasm (the full one is over the 64 MiB carry limit), and run
 * `deno run -A --node-modules-dir=manual bench/gpu/mod.ts` (in `auto` mode Deno tries to fetch
 * every package of the lockfile first; `deno task --node-modules-dir=manual bench:gpu` does not
 * pass the flag on to the task's `deno run`, which then fails offline at the first compile).
 * @module
 */
import { openBenchDevice } from "./bench_device.ts";
import { measureCeilings } from "./ceilings.ts";
import { benchGemv, type GemvShape } from "./gemv_bench.ts";
import { PACKED_DOT } from "../../compiler/codegen/contract.ts";
import type { Q8Tuning } from "../../compiler/codegen/webgpu/matmul_gemv_q8.ts";
import { GpuTimer } from "./gpu_timer.ts";
import { benchModel, type ModelBenchOptions, type ModelFigures } from "./model_bench.ts";
import { formatReport } from "./report.ts";

const small = Deno.args.includes("--small");
/** `--opt=<flags>`: compile the models with these optimisation flags instead of O2. */
const opt = Deno.args.find((a) => a.startsWith("--opt="))?.slice(6);
const only = Deno.args.find((a) => a.startsWith("--models="))?.slice(9).split(",");
const root = new URL("../../", import.meta.url).pathname;
const log = (s: string) => console.log(s);

const { device: dev, adapter } = await openBenchDevice();
const timer = new GpuTimer(dev.gpu);
const info = adapter.info;
const deviceLine = `${
  info.description || info.device
} (${info.vendor} ${info.architecture}), Deno ${Deno.version.deno}`;
log(`device: ${deviceLine}`);

log("ceilings…");
const q8 = dev.inner.target.features.includes(PACKED_DOT);
const ceilings = await measureCeilings(dev.gpu, timer, {
  bytes: small ? 64 << 20 : 2 ** 31,
  sms: small ? 2 : dev.inner.target.computeUnits ?? 132,
  dp4a: q8,
});
log(
  `  read ${ceilings.readGBs.toFixed(0)} GB/s (${ceilings.readBest}); dispatch ${
    ceilings.dispatchGpuUs.toFixed(2)
  } µs GPU, ${ceilings.dispatchCpuUs.toFixed(2)} µs CPU; FMA ${
    ceilings.fmaF32Tflops.toFixed(1)
  } TFLOP/s f32; dot4I8Packed ${ceilings.dp4aTops?.toFixed(1) ?? "n/a"} TOP/s`,
);

// the GEMVs first, on a clean memory state (after the models' runs, some measured 2-3x slower)
const gemvShapes: GemvShape[] = small
  ? [{ name: "256x256", N: 256, K: 256, epilogue: "none" }, {
    name: "1024x256 silu",
    N: 1024,
    K: 256,
    epilogue: "silu_mul",
  }]
  : [
    { name: "4096x4096 (q)", N: 4096, K: 4096, epilogue: "none" },
    { name: "4096x4096 +add (o_proj)", N: 4096, K: 4096, epilogue: "add" },
    { name: "1024x4096 (k, v)", N: 1024, K: 4096, epilogue: "none" },
    { name: "6144x4096 (fused qkv)", N: 6144, K: 4096, epilogue: "none" },
    { name: "14336x4096 (gate, up)", N: 14336, K: 4096, epilogue: "none" },
    { name: "28672x4096 +silu (gate_up)", N: 28672, K: 4096, epilogue: "silu_mul" },
    { name: "4096x14336 (down)", N: 4096, K: 14336, epilogue: "none" },
    { name: "4096x14336 +add (down)", N: 4096, K: 14336, epilogue: "add" },
    { name: "128256x4096 (lm_head)", N: 128256, K: 4096, epilogue: "none" },
  ];
// q8 activations (what the compiler emits where the adapter has packed int8 dot products: x
// unit-major but for lm_head, whose x comes from take_rows) and f32 activations side by side;
// and 16 rows (batch-16 decode)
const gemvRuns: GemvShape[] = [
  ...gemvShapes.flatMap((s) =>
    q8 ? [{ ...s, name: `${s.name} q8`, xq8: true, xUnits: !/lm_head/.test(s.name) }, s] : [s]
  ),
  ...gemvShapes.filter((s) => /o_proj|gate_up|lm_head|256x256/.test(s.name)).flatMap((
    s,
  ) => [{ ...s, name: `${s.name} R=16${q8 ? " q8" : ""}`, rows: 16, xq8: q8 }]),
];
// `--q8-sweep`: the q8 GEMV under several tunings on the 8B shapes (instead of the list above)
if (Deno.args.includes("--q8-sweep") && q8) {
  gemvRuns.length = 0;
  const sweep: Q8Tuning[] = [
    { threadsPerCol: 128, colsPerThread: 16, rowsPerGroup: 1, loadCols: 8 },
    { threadsPerCol: 128, colsPerThread: 8, rowsPerGroup: 1, loadCols: 8, persistent: 132 },
    { threadsPerCol: 128, colsPerThread: 8, rowsPerGroup: 1, loadCols: 8, persistent: 264 },
    { threadsPerCol: 128, colsPerThread: 8, rowsPerGroup: 1, loadCols: 8, persistent: 528 },
    { threadsPerCol: 128, colsPerThread: 4, rowsPerGroup: 1, loadCols: 4, persistent: 264 },
    { threadsPerCol: 256, colsPerThread: 8, rowsPerGroup: 1, loadCols: 8, persistent: 264 },
    { threadsPerCol: 128, colsPerThread: 4, rowsPerGroup: 1, loadCols: 4 },
    { threadsPerCol: 64, colsPerThread: 4, rowsPerGroup: 1, loadCols: 4 },
    { threadsPerCol: 64, colsPerThread: 8, rowsPerGroup: 1, loadCols: 4 },
    { threadsPerCol: 64, colsPerThread: 4, rowsPerGroup: 1, loadCols: 4, persistent: 264 },
    { threadsPerCol: 32, colsPerThread: 4, rowsPerGroup: 1, loadCols: 2 },
  ];
  for (
    const s of gemvShapes.filter((s) => /o_proj|qkv|gate_up|\+add \(down|lm_head/.test(s.name))
  ) {
    gemvRuns.push({ ...s, name: `${s.name} q8 default`, xq8: true });
    for (const t of sweep) {
      gemvRuns.push({ ...s, name: `${s.name} ${Object.values(t).join("/")}`, q8: t });
    }
  }
}
let gemv: Awaited<ReturnType<typeof benchGemv>> = [];
if (!Deno.args.includes("--no-gemv")) {
  log("GEMV kernels…");
  gemv = await benchGemv(dev, timer, gemvRuns, {
    minBytes: small ? 4 << 20 : 256 << 20,
    dispatches: small ? 8 : 200,
  });
}

const tiny = (model_type: string, tie: boolean): Record<string, unknown> => ({
  architectures: [model_type === "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
  model_type,
  hidden_act: "silu",
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 2048,
  max_position_embeddings: 1024,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: tie,
});
const models: [string, string | Record<string, unknown>][] = small
  ? [["tiny-llama", tiny("llama", false)], ["tiny-qwen2", tiny("qwen2", true)]]
  : [["llama3-8b", `${root}bench/configs/llama3-8b`], [
    "llama3.2-1b",
    `${root}bench/configs/llama3.2-1b`,
  ], ["qwen2.5-0.5b", `${root}bench/configs/qwen2.5-0.5b`]];
const wanted = models.filter(([name]) =>
  !only || only.some((o) => name.endsWith(o) || name.includes(`-${o}`))
);
const shape = small
  ? { promptLen: 32, decodeTokens: 16, batches: [1, 4], stepsAhead: [4], rawSteps: 4 }
  : { promptLen: 512, decodeTokens: 128, batches: [1, 16], stepsAhead: [4, 16], rawSteps: 64 };
// `--batches=1`: only these decode batches; `--no-engine`: no KilnEngine runs (quick comparisons)
const batches = Deno.args.find((a) => a.startsWith("--batches="))?.slice(10).split(",").map(Number);
if (batches) shape.batches = batches;
// `--prompt=4096`: prompts of this many tokens (decode then attends to that many positions)
const prompt = Deno.args.find((a) => a.startsWith("--prompt="))?.slice(9);
if (prompt) shape.promptLen = Number(prompt);
if (Deno.args.includes("--no-engine")) shape.stepsAhead = [];
// `--decode=512`: tokens of the engine runs' long generations (short: a quarter); `--pairs=7`:
// (short, long) pairs a figure (engine figures steadier for comparisons)
const decode = Deno.args.find((a) => a.startsWith("--decode="))?.slice(9);
if (decode) shape.decodeTokens = Number(decode);
const pairs = Number(Deno.args.find((a) => a.startsWith("--pairs="))?.slice(8) ?? 0) || undefined;
const boundaries = Deno.args.includes("--boundaries");

const modelFigures: ModelFigures[] = [];
const errors: string[] = [];
for (const [name, config] of wanted) {
  log(`model ${name}…`);
  const o: ModelBenchOptions = {
    name,
    config,
    ...shape,
    ...(opt ? { opt } : {}),
    ...(boundaries ? { boundaries } : {}),
    ...(pairs ? { pairs } : {}),
  };
  const keep = dev.liveBuffers();
  try {
    modelFigures.push(await benchModel(dev, timer, adapter, o, log));
  } catch (e) {
    // keep the other figures: report the failure and go on
    errors.push(`${name}: ${(e as Error).stack ?? e}`);
    console.error(`model ${name} failed:`, e);
  }
  // free the model's weights, KV cache and scratch: the next figures start from a clean memory state
  await dev.read(dev.createBuffer(4, "sync"), 4);
  dev.releaseAllBut(keep);
}

const results = {
  date: new Date().toISOString(),
  command: `deno task bench:gpu ${Deno.args.join(" ")}`.trim(),
  device: deviceLine,
  small,
  ceilings,
  gemv,
  models: modelFigures,
};
console.log("\n" + formatReport(results));
const outDir = Deno.env.get("OUT") ?? `${root}bench/out`;
await Deno.mkdir(outDir, { recursive: true });
const tmp = `${outDir}/gpu.json.tmp`;
await Deno.writeTextFile(tmp, JSON.stringify(results, null, 2));
await Deno.rename(tmp, `${outDir}/gpu.json`);
log(`wrote ${outDir}/gpu.json`);
timer.destroy();
dev.destroy();
Deno.exit(0);
