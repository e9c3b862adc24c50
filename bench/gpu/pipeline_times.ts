/**
 * Pipeline creation time of each kernel of a model's library on this adapter, one at a time
 * (the engine's WebGPU device, `kernel()`: shader module, bind group layout and pipeline
 * created synchronously), slowest first. Run with the driver's shader cache off for
 * first-start figures (NVIDIA: `__GL_SHADER_DISK_CACHE=0`).
 * Usage: `deno run -A bench/gpu/pipeline_times.ts [bench/configs/llama3-8b]`
 * @module
 */
import { compile } from "../../compiler/compile.ts";
import type { KernelSpec } from "../../compiler/codegen/contract.ts";
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { loadLibrary } from "../../engine/library.ts";
import { kernelLabel } from "./plan_figures.ts";

const config = Deno.args[0] ?? "bench/configs/llama3-8b";
const dev = await createWebGpuDevice();
if (!dev) throw new Error("no WebGPU adapter");
const dir = await Deno.makeTempDir({ prefix: "kiln-pipelines-" });
await compile({
  config,
  quantization: "q4f16_1",
  target: dev.target,
  output: `${dir}/lib`,
  warn: () => {},
});
const lib = await loadLibrary(`${dir}/lib`);
const rows: [number, string, number][] = [];
let total = 0;
for (const k of lib.plan.kernels) {
  const t = performance.now();
  dev.kernel(k.spec as KernelSpec, k.wgsl!);
  const ms = performance.now() - t;
  total += ms;
  rows.push([ms, kernelLabel(k.spec as KernelSpec), k.wgsl!.code.length]);
}
rows.sort((a, b) => b[0] - a[0]);
console.log(`${lib.plan.kernels.length} pipelines one at a time: ${total.toFixed(0)} ms`);
for (const [ms, label, chars] of rows) {
  console.log(`${ms.toFixed(1).padStart(8)} ms  ${label} (${chars} characters of WGSL)`);
}
await Deno.remove(dir, { recursive: true });
dev.destroy();
