/**
 * Where the host's time goes while `KilnEngine` decodes: every WebGPU call the engine makes
 * (pass, encoder, queue, device, buffer methods) is wrapped with a timer, and the engine's
 * own layers (`Model.run`, `ModelRuntime.run`, the device's `dispatch`/`write`/`submit`/`copy`)
 * too; a greedy b=1 generation of `--tokens` tokens (rounds of `--ahead` steps) then reports
 * each call's count and host µs a decode step, beside the wall time a step.
 * Usage (GPU host): `deno run -A --no-check bench/gpu/host_costs.ts [--models=0.5b,8b]`
 * @module
 */
import { parseArgs } from "node:util";
import { targetFromAdapter } from "../../compiler/target.ts";
import { PAGE_SIZE } from "../../compiler/codegen/contract.ts";
import { Model } from "../../engine/model.ts";
import { ModelRuntime } from "../../engine/runtime.ts";
import { KilnEngine } from "../../engine/engine.ts";
import { GREEDY } from "../../engine/sampling_params.ts";
import { openBenchDevice } from "./bench_device.ts";
import { tokens } from "./engine_bench.ts";
import { syntheticModel } from "./library_items.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    models: { type: "string", default: "0.5b,8b" },
    tokens: { type: "string", default: "256" },
    ahead: { type: "string", default: "16" },
    /** No wrappers: the engine's own rate, three (short, long) pairs. */
    plain: { type: "boolean", default: false },
  },
});
const CONFIGS: Record<string, string> = {
  "8b": "llama3-8b",
  "1b": "llama3.2-1b",
  "0.5b": "qwen2.5-0.5b",
};

/** Host µs and calls by name, since the last reset. */
const spent = new Map<string, { calls: number; ms: number }>();
function wrap(obj: Record<string, unknown>, name: string, label: string) {
  const orig = obj[name] as (...a: unknown[]) => unknown;
  if (typeof orig !== "function") return;
  obj[name] = function (this: unknown, ...a: unknown[]) {
    const t = performance.now();
    try {
      return orig.apply(this, a);
    } finally {
      const e = spent.get(label) ?? { calls: 0, ms: 0 };
      e.calls++;
      e.ms += performance.now() - t;
      spent.set(label, e);
    }
  };
}
const g = globalThis as unknown as Record<string, { prototype: Record<string, unknown> }>;
for (
  const [cls, names] of args.plain ? [] : [
    ["GPUComputePassEncoder", ["setPipeline", "setBindGroup", "dispatchWorkgroups", "end"]],
    ["GPUCommandEncoder", ["beginComputePass", "copyBufferToBuffer", "finish"]],
    ["GPUQueue", ["submit", "writeBuffer"]],
    ["GPUDevice", ["createCommandEncoder", "createBuffer", "createBindGroup"]],
    ["GPUBuffer", ["mapAsync", "getMappedRange", "destroy"]],
  ] as const
) {
  for (const n of names) wrap(g[cls].prototype, n, `${cls}.${n}`);
}

const { device: dev, adapter } = await openBenchDevice();
if (!args.plain) {
  for (const n of ["dispatch", "write", "submit", "copy", "read", "readSubmitted"]) {
    wrap(dev.inner as unknown as Record<string, unknown>, n, `device.${n}`);
  }
  wrap(Model.prototype as unknown as Record<string, unknown>, "run", "Model.run");
  wrap(ModelRuntime.prototype as unknown as Record<string, unknown>, "run", "ModelRuntime.run");
}

const root = new URL("../../", import.meta.url).pathname;
const N = Number(args.tokens), AHEAD = Number(args.ahead);
const TOKENIZER = {
  vocabSize: 0,
  bosTokenId: null,
  eosTokenIds: [],
  encode: () => [],
  decode: (ids: number[]) => ids.join(" "),
  tokenText: (i: number) => `${i}`,
};
for (const m of args.models.split(",")) {
  const { lib, model } = await syntheticModel(
    CONFIGS[m] ? `${root}bench/configs/${CONFIGS[m]}` : m,
    targetFromAdapter(adapter),
    dev,
    Math.ceil((600 + 3 * N) / PAGE_SIZE) + 8,
  );
  const engine = new KilnEngine(model, TOKENIZER, null, m, {
    stepsAhead: AHEAD,
    maxNumSequence: 1,
  });
  const run = async (n: number) => {
    const t = performance.now();
    for await (
      const _ of engine.generate({
        prompt: tokens(64, lib.metadata.vocab_size, 1),
        maxTokens: n,
        sampling: { ...GREEDY, seed: 1 },
        ignoreEos: true,
      })
    ) { /* tokens */ }
    return performance.now() - t;
  };
  await run(N); // warm-up (clock, bind groups)
  const steps = N - N / 4;
  if (args.plain) {
    const rates = [];
    for (let i = 0; i < 3; i++) {
      const short = await run(N / 4), long = await run(N);
      rates.push(steps / (long - short) * 1000);
    }
    console.log(
      `${m}: b=1, stepsAhead ${AHEAD}: ${rates.map((r) => r.toFixed(1)).join(", ")} tok/s`,
    );
    continue;
  }
  const snap = () => new Map([...spent].map(([k, v]) => [k, { ...v }]));
  const before = snap();
  const short = await run(N / 4);
  const mid = snap();
  const long = await run(N);
  const after = snap();
  const wall = long - short;
  console.log(
    `\n${m}: b=1, stepsAhead ${AHEAD}: ${(wall * 1000 / steps).toFixed(0)} µs wall a step (${
      (steps / wall * 1000).toFixed(1)
    } tok/s); host µs a step by call (long run minus short run):`,
  );
  const rows = [...after].map(([k, v]) => {
    const a = mid.get(k) ?? { calls: 0, ms: 0 }, b = before.get(k) ?? { calls: 0, ms: 0 };
    const calls = v.calls - 2 * a.calls + b.calls, ms = v.ms - 2 * a.ms + b.ms;
    return { k, calls: calls / steps, us: ms * 1000 / steps };
  }).filter((r) => r.calls > 0).sort((x, y) => y.us - x.us);
  for (const r of rows) {
    console.log(
      `  ${r.k.padEnd(36)} ${r.calls.toFixed(1).padStart(7)} calls ${
        r.us.toFixed(1).padStart(8)
      } µs  (${(r.us / r.calls).toFixed(2)} µs a call)`,
    );
  }
  // (the engine is left open: closing it destroys the device the next model uses)
}
dev.destroy();
