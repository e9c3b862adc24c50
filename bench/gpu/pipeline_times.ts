/**
 * Pipeline creation time of each kernel of a model's library on this adapter, one at a time
 * (the engine's WebGPU device, `kernel()`: shader module, bind group layout and pipeline
 * created synchronously), slowest first, and of that the shader module alone (naga parsing
 * and validating the WGSL, timed by creating the module once more on its own: with the
 * driver's cache warm it was 95% of the 8B's pipeline creation on the H100 host until the
 * unrolled kernels moved their arithmetic into functions, naga's time being quadratic in a
 * function's expressions). Run with the driver's shader cache off for first-start figures
 * (NVIDIA: `__GL_SHADER_DISK_CACHE=0`).
 * Usage: `deno run -A bench/gpu/pipeline_times.ts [bench/configs/llama3-8b]`
 * @module
 */
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { kernelLabel } from "./plan_figures.ts";
import { libraryItems } from "./library_items.ts";

const config = Deno.args[0] ?? "bench/configs/llama3-8b";
const dev = await createWebGpuDevice();
if (!dev) throw new Error("no WebGPU adapter");
const items = await libraryItems(config, dev.target);
const rows: [number, number, string, number][] = [];
let total = 0, modules = 0;
for (const k of items) {
  const t = performance.now();
  dev.kernel(k.spec, k.source);
  const m = performance.now();
  dev.gpu.createShaderModule({ code: k.source.code });
  const ms = m - t, mod = performance.now() - m;
  total += ms;
  modules += mod;
  rows.push([ms, mod, kernelLabel(k.spec), k.source.code.length]);
}
rows.sort((a, b) => b[0] - a[0]);
console.log(
  `${items.length} pipelines one at a time: ${total.toFixed(0)} ms (shader modules alone ${
    modules.toFixed(0)
  } ms)`,
);
for (const [ms, mod, label, chars] of rows) {
  console.log(
    `${ms.toFixed(1).padStart(8)} ms (module ${
      mod.toFixed(1)
    })  ${label} (${chars} characters of WGSL)`,
  );
}
dev.destroy();
