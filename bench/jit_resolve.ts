/**
 * JIT resolve benchmark: cold resolve (compile + weight conversion) and warm resolve (cache
 * hit: sha256 verify + import of lib.js; weights verified separately), each in a fresh process
 * so nothing is cached in memory. Target: a warm library hit under 100 ms.
 *
 * `benchJitResolve()` for bench/mod.ts, or standalone:
 * deno run -A bench/jit_resolve.ts [--variant llama2] [--warm 5] [--target auto|cpu|webgpu]
 * (standalone writes bench/out/jit_resolve.json).
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { makeModel } from "../examples/make_model.ts";
import { resolve } from "../jit/mod.ts";

/** One resolve in a fresh process: its timings (ms) and where the library came from. */
export interface ResolveRun {
  origin: string;
  weights: string;
  target: string;
  detectMs: number;
  keyMs: number;
  libMs: number;
  importMs: number;
  weightsMs: number;
  totalMs: number;
}

export interface JitResolveReport {
  variant: string;
  target: string;
  cold: ResolveRun;
  warm: ResolveRun[];
  /** Medians over the warm runs; libHitMs = verify (libMs) + import. */
  warmMedian: Record<
    "libHitMs" | "verifyMs" | "importMs" | "detectMs" | "keyMs" | "weightsMs" | "totalMs",
    number
  >;
}

const SELF = new URL(import.meta.url).pathname;

async function child(
  model: string,
  root: string,
  target: string,
  libOnly = false,
): Promise<ResolveRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SELF,
      "--child",
      "--model",
      model,
      "--root",
      root,
      "--target",
      target,
      ...(libOnly ? ["--lib-only"] : []),
    ],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("bench child failed");
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

/** Cold resolve, then `warm` warm resolves, of a generated `variant` model (q4f16_1). */
export async function benchJitResolve(
  opts: { variant?: string; warm?: number; target?: string; configDir?: string } = {},
): Promise<JitResolveReport> {
  const { warm: n = 5, target = "auto" } = opts;
  // a config-only folder (e.g. bench/configs/llama3-8b) resolves the library alone
  const variant = opts.configDir ?? opts.variant ?? "llama2";
  const tmp = await Deno.makeTempDir({ prefix: "kiln-bench-jit-" });
  try {
    const model = opts.configDir ?? join(tmp, "model");
    if (!opts.configDir) await makeModel({ out: model, variant });
    const root = join(tmp, "cache");
    const libOnly = opts.configDir !== undefined;
    const cold = await child(model, root, target, libOnly);
    const warm: ResolveRun[] = [];
    for (let i = 0; i < n; i++) warm.push(await child(model, root, target, libOnly));
    const med = (k: keyof ResolveRun) => {
      const v = warm.map((w) => w[k] as number).sort((x, y) => x - y);
      return v[Math.floor(v.length / 2)];
    };
    const hits = warm.map((w) => w.libMs + w.importMs).sort((x, y) => x - y);
    return {
      variant,
      target: cold.target,
      cold,
      warm,
      warmMedian: {
        libHitMs: hits[Math.floor(hits.length / 2)],
        verifyMs: med("libMs"),
        importMs: med("importMs"),
        detectMs: med("detectMs"),
        keyMs: med("keyMs"),
        weightsMs: med("weightsMs"),
        totalMs: med("totalMs"),
      },
    };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** Two lines for a report. */
export function formatJitResolve(r: JitResolveReport): string {
  const f = (x: number) => x.toFixed(1);
  const m = r.warmMedian;
  return `cold: compile+verify ${f(r.cold.libMs)} ms, import ${f(r.cold.importMs)} ms, ` +
    `weights (convert) ${f(r.cold.weightsMs)} ms, detect ${f(r.cold.detectMs)} ms\n` +
    `warm (median of ${r.warm.length}): library hit ${f(m.libHitMs)} ms (verify ${
      f(m.verifyMs)
    } + ` +
    `import ${f(m.importMs)}), key ${f(m.keyMs)} ms, detect ${f(m.detectMs)} ms, ` +
    `weights verify ${f(m.weightsMs)} ms; whole resolve ${f(m.totalMs)} ms`;
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      variant: { type: "string", default: "llama2" },
      warm: { type: "string", default: "5" },
      target: { type: "string", default: "auto" },
      child: { type: "boolean", default: false },
      model: { type: "string" },
      root: { type: "string" },
      "lib-only": { type: "boolean", default: false },
    },
  });
  if (a.child) {
    const t0 = performance.now();
    const r = await resolve({
      model: a.model!,
      quantization: "q4f16_1",
      cacheRoot: a.root!,
      target: a.target,
      weights: !a["lib-only"],
      notify: () => {},
    });
    const run: ResolveRun = {
      origin: r.lib.origin,
      weights: r.weights?.origin ?? "none",
      target: `${r.target.backend} ${r.target.description}`,
      ...r.timings,
      totalMs: performance.now() - t0,
    };
    console.log(JSON.stringify(run));
  } else {
    const report = await benchJitResolve({
      variant: a.variant,
      warm: Number(a.warm),
      target: a.target,
    });
    console.log(`target: ${report.target}  model: ${report.variant} q4f16_1`);
    console.log(formatJitResolve(report));
    await Deno.mkdir("bench/out", { recursive: true });
    const tmpOut = `bench/out/jit_resolve.json.${Deno.pid}.tmp`;
    await Deno.writeTextFile(tmpOut, JSON.stringify(report, null, 1));
    await Deno.rename(tmpOut, "bench/out/jit_resolve.json");
  }
}
