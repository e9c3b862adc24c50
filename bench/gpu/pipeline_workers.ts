/**
 * Experiment: does creating a library's pipelines in parallel worker threads first (each its
 * own WebGPU device: the driver compiles them side by side and keeps them in its shader
 * cache) make the main device's pipeline creation fast on a cold driver cache? Prints the
 * workers' time, then the main device's `kernels()` time after them.
 * Usage: `deno run -A bench/gpu/pipeline_workers.ts [config] [workers]` (0 workers: the main
 * device alone); run with a fresh `__GL_SHADER_DISK_CACHE_PATH` for a first start. On the H100
 * (BENCHMARKS.md) one run with 8 workers halved the 8B's first start, but a later one found the
 * main device's creation no faster after 2 or 4 workers, and runs with 8 and 16 hung (not
 * understood): the engine does not do this.
 * The module is its own worker script.
 * @module
 */
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { type LibraryItem as Item, libraryItems } from "./library_items.ts";

if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  const scope = globalThis as unknown as {
    onmessage: (e: MessageEvent<Item[]>) => void;
    postMessage: (m: unknown) => void;
  };
  scope.onmessage = async (e) => {
    const dev = await createWebGpuDevice();
    const t = performance.now();
    await dev!.kernels(e.data);
    scope.postMessage({ ms: performance.now() - t, n: e.data.length });
    dev!.destroy();
  };
} else {
  const config = Deno.args[0] ?? "bench/configs/llama3-8b";
  const N = Number(Deno.args[1] ?? 8);
  const dev = await createWebGpuDevice();
  if (!dev) throw new Error("no WebGPU adapter");
  const items: Item[] = await libraryItems(config, dev.target);
  // heaviest first (by WGSL length), dealt round-robin
  const order = items.map((it, i) => [it.source.code.length, i]).sort((a, b) => b[0] - a[0]);
  const parts: Item[][] = Array.from({ length: N }, () => []);
  if (N > 0) order.forEach(([, i], j) => parts[j % N].push(items[i]));
  const t0 = performance.now();
  if (N > 0) {
    const done = parts.filter((p) => p.length).map((p) =>
      new Promise<{ ms: number; n: number }>((res) => {
        const w = new Worker(import.meta.url, { type: "module" });
        w.onmessage = (e) => {
          res(e.data);
          w.terminate();
        };
        w.postMessage(p);
      })
    );
    const r = await Promise.all(done);
    console.log(`workers: ${r.map((x) => `${x.n} in ${x.ms.toFixed(0)} ms`).join(", ")}`);
  }
  const t1 = performance.now();
  await dev.kernels(items);
  const t2 = performance.now();
  console.log(
    `${items.length} kernels, ${N} workers: workers ${(t1 - t0).toFixed(0)} ms, then main ${
      (t2 - t1).toFixed(0)
    } ms, total ${(t2 - t0).toFixed(0)} ms`,
  );
  dev.destroy();
}
