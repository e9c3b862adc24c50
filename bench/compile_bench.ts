/**
 * Cold compile time: a fresh Deno process per run (so esbuild-wasm's start-up and every
 * module's first use are counted), compiling a config for a target. Reports the compile()
 * time measured inside the process and the whole process's wall time.
 * @module
 */
import { compile } from "../compiler/compile.ts";

export interface CompileBenchRow {
  model: string;
  quantization: string;
  target: string;
  compileMs: number;
  processMs: number;
  decodeDispatches: number;
  /** Milliseconds per compile stage, of the median run. */
  stages: Record<string, number>;
}

/** Run inside the child process: compile once, print the figures as JSON. */
async function child(
  model: string,
  quantization: string,
  target: "webgpu" | "cpu" | "auto",
): Promise<void> {
  const out = await Deno.makeTempDir({ prefix: "kiln-bench-" });
  const t0 = performance.now();
  const r = await compile({
    config: model,
    quantization,
    target,
    output: `${out}/lib`,
    warn: () => {},
  });
  const ms = performance.now() - t0;
  await Deno.remove(out, { recursive: true });
  console.log(
    JSON.stringify({
      compileMs: ms,
      decodeDispatches: r.metadata.decode_dispatches,
      stages: r.timings,
    }),
  );
}

export async function benchCompile(
  model: string,
  quantization: string,
  target: "webgpu" | "cpu" | "auto",
  runs = 3,
): Promise<CompileBenchRow> {
  const rows: {
    compileMs: number;
    processMs: number;
    decodeDispatches: number;
    stages: Record<string, number>;
  }[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const p = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, model, quantization, target],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const processMs = performance.now() - t0;
    if (!p.success) throw new Error(`compile of ${model} failed`);
    rows.push({ ...JSON.parse(new TextDecoder().decode(p.stdout)), processMs });
  }
  rows.sort((a, b) => a.compileMs - b.compileMs);
  const mid = rows[Math.floor(rows.length / 2)];
  return { model, quantization, target, ...mid };
}

if (import.meta.main) await child(Deno.args[0], Deno.args[1], Deno.args[2] as "webgpu");
