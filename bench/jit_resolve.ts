/**
 * JIT resolve benchmark: cold resolve (compile + weight conversion) and warm resolve (cache
 * hit: sha256 verify + import of lib.js; weights verified separately), each in a fresh process
 * so nothing is cached in memory. Target: a warm library hit under 100 ms (verify + import).
 *
 * deno run -A bench/jit_resolve.ts [--variant llama2] [--warm 5] [--target auto|cpu|webgpu]
 * Writes bench/out/jit_resolve.json.
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { makeModel } from "../examples/make_model.ts";
import { resolve } from "../jit/mod.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    variant: { type: "string", default: "llama2" },
    warm: { type: "string", default: "5" },
    target: { type: "string", default: "auto" },
    child: { type: "boolean", default: false },
    model: { type: "string" },
    root: { type: "string" },
  },
});

if (a.child) {
  const t0 = performance.now();
  const r = await resolve({
    model: a.model!,
    quantization: "q4f16_1",
    cacheRoot: a.root!,
    target: a.target,
    notify: () => {},
  });
  console.log(JSON.stringify({
    origin: r.lib.origin,
    weights: r.weights?.origin,
    target: r.target.description,
    ...r.timings,
    totalMs: performance.now() - t0,
  }));
  Deno.exit(0);
}

type Row = Record<string, number | string>;
async function child(model: string, root: string): Promise<Row> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--child",
      "--model",
      model,
      "--root",
      root,
      "--target",
      a.target!,
    ],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("bench child failed");
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

const tmp = await Deno.makeTempDir({ prefix: "kiln-bench-jit-" });
try {
  const model = join(tmp, "model");
  await makeModel({ out: model, variant: a.variant });
  const root = join(tmp, "cache");
  const cold = await child(model, root);
  const warm: Row[] = [];
  for (let i = 0; i < Number(a.warm); i++) warm.push(await child(model, root));
  const med = (k: string) => {
    const v = warm.map((w) => w[k] as number).sort((x, y) => x - y);
    return v[Math.floor(v.length / 2)];
  };
  const f = (x: number) => x.toFixed(1);
  const report = {
    variant: a.variant,
    target: cold.target,
    cold,
    warm,
    warmMedian: {
      libHitMs: med("libMs") + med("importMs"),
      verifyMs: med("libMs"),
      importMs: med("importMs"),
      detectMs: med("detectMs"),
      keyMs: med("keyMs"),
      weightsMs: med("weightsMs"),
      totalMs: med("totalMs"),
    },
  };
  console.log(`target: ${cold.target}  model: ${a.variant} q4f16_1`);
  console.log(
    `cold: compile+verify ${f(cold.libMs as number)} ms, import ${
      f(cold.importMs as number)
    } ms, ` +
      `weights (convert) ${f(cold.weightsMs as number)} ms, detect ${
        f(cold.detectMs as number)
      } ms`,
  );
  const m = report.warmMedian;
  console.log(
    `warm (median of ${warm.length}): library hit ${f(m.libHitMs)} ms (verify ${f(m.verifyMs)} + ` +
      `import ${f(m.importMs)}), key ${f(m.keyMs)} ms, detect ${f(m.detectMs)} ms, weights verify ${
        f(m.weightsMs)
      } ms`,
  );
  await Deno.mkdir("bench/out", { recursive: true });
  const tmpOut = `bench/out/jit_resolve.json.${Deno.pid}.tmp`;
  await Deno.writeTextFile(tmpOut, JSON.stringify(report, null, 1));
  await Deno.rename(tmpOut, "bench/out/jit_resolve.json");
} finally {
  await Deno.remove(tmp, { recursive: true });
}
