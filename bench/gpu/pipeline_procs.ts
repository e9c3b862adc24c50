/**
 * Experiment: does creating a library's pipelines first in parallel child processes (each its
 * own WebGPU device, exiting when done, so that the driver writes what it compiled to its disk
 * shader cache) make a later process's pipeline creation fast on a cold driver cache? Prints
 * the children's times, then a new process's `kernels()` time for every pipeline after them.
 * Usage: `deno run -A bench/gpu/pipeline_procs.ts [config] [processes]` (0: the new process
 * alone, a first start); run with a fresh `__GL_SHADER_DISK_CACHE_PATH`.
 * The module is its own child script (`--child i/n`: part i of n, the heaviest kernels dealt
 * round-robin; `--child all`: every kernel).
 * On the H100 (BENCHMARKS.md): a new process finds what one earlier process wrote to the disk
 * cache (8B: 6.6 s on a first start, 0.7 s after), but not what several processes wrote at
 * once (after 2, 4, 8 or 12 children: 3.7-7.8 s), nor what was written after its own device
 * was created: the driver's disk cache cannot be filled in parallel, so the engine does not.
 * @module
 */
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { type LibraryItem as Item, libraryItems } from "./library_items.ts";

/** Part `i` of `n` of `items`: the heaviest (by WGSL length) dealt round-robin. */
function part(items: Item[], i: number, n: number): Item[] {
  const order = items.map((it, j) => [it.source.code.length, j]).sort((a, b) => b[0] - a[0]);
  return order.filter((_, k) => k % n === i).map(([, j]) => items[j]);
}

const child = Deno.args.indexOf("--child");
const positional = Deno.args.filter((a, k) =>
  !a.startsWith("--") && (child < 0 || k !== child + 1)
);
const config = positional.find((a) => !/^\d+$/.test(a)) ?? "bench/configs/llama3-8b";

/** Runs this script as a child process with `args` after the config; its exit code. */
async function spawn(args: string[]): Promise<number> {
  const self = new URL(import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", "--node-modules-dir=manual", self, config, ...args],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  return out.code;
}

if (child >= 0) {
  // part i of n ("all": every kernel, the time a start takes)
  const dev = await createWebGpuDevice();
  if (!dev) throw new Error("no WebGPU adapter");
  const items: Item[] = await libraryItems(config, dev.target);
  const arg = Deno.args[child + 1];
  const [i, n] = arg === "all" ? [0, 1] : arg.split("/").map(Number);
  const mine = part(items, i, n);
  const t = performance.now();
  await dev.kernels(mine);
  console.log(`child ${arg}: ${mine.length} kernels in ${(performance.now() - t).toFixed(0)} ms`);
  dev.destroy();
} else {
  // N children compile a part each, then a new process creates every pipeline
  const N = Number(positional.find((a) => /^\d+$/.test(a)) ?? 4);
  const t0 = performance.now();
  const codes = await Promise.all(
    Array.from({ length: N }, (_, i) => spawn(["--child", `${i}/${N}`])),
  );
  const t1 = performance.now();
  await spawn(["--child", "all"]);
  console.log(
    `${N} processes (exit ${codes.join(",")}): children ${(t1 - t0).toFixed(0)} ms wall`,
  );
}
