/**
 * Pipeline creation time of each kernel of a model's library on this adapter, one at a time
 * (shader module and compute pipeline created synchronously), slowest first. Run with the
 * driver's shader cache off for first-start figures (NVIDIA: `__GL_SHADER_DISK_CACHE=0`).
 * Usage: `deno run -A bench/gpu/pipeline_times.ts [bench/configs/llama3-8b]`
 * @module
 */
import { compile } from "../../compiler/compile.ts";
import { targetFromAdapter } from "../../compiler/target.ts";
import { loadLibrary } from "../../engine/library.ts";
import { kernelLabel } from "./plan_figures.ts";

const config = Deno.args[0] ?? "bench/configs/llama3-8b";
const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) throw new Error("no WebGPU adapter");
const gpu = await adapter.requestDevice({
  requiredLimits: {
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
    maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
  },
});
const dir = await Deno.makeTempDir({ prefix: "kiln-pipelines-" });
await compile({
  config,
  quantization: "q4f16_1",
  target: targetFromAdapter(adapter),
  output: `${dir}/lib`,
  warn: () => {},
});
const lib = await loadLibrary(`${dir}/lib`);
const rows: [number, string, number][] = [];
let total = 0;
for (const k of lib.plan.kernels) {
  const t = performance.now();
  gpu.createComputePipeline({
    layout: "auto",
    compute: { module: gpu.createShaderModule({ code: k.wgsl!.code }), entryPoint: "main" },
  });
  const ms = performance.now() - t;
  total += ms;
  rows.push([ms, kernelLabel(k.spec), k.wgsl!.code.length]);
}
rows.sort((a, b) => b[0] - a[0]);
console.log(`${lib.plan.kernels.length} pipelines one at a time: ${total.toFixed(0)} ms`);
for (const [ms, label, chars] of rows) {
  console.log(`${ms.toFixed(1).padStart(8)} ms  ${label} (${chars} characters of WGSL)`);
}
await Deno.remove(dir, { recursive: true });
gpu.destroy();
