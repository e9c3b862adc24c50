/**
 * The kernel conformance suite: every case of `cases.ts` on every available device: the CPU
 * device always, the WebGPU device when an adapter exists (otherwise its cases are listed as
 * ignored, with the reason in their names).
 * @module
 */
import type { KernelOp } from "../../compiler/codegen/contract.ts";
import { cpuKernel } from "../../compiler/codegen/cpu/mod.ts";
import { wgslKernel } from "../../compiler/codegen/webgpu/mod.ts";
import type { Device, DeviceKernel } from "../../engine/device.ts";
import { createCpuDevice } from "../../engine/devices/cpu.ts";
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { type ConformanceCase, conformanceCases } from "./cases.ts";
import { runCase } from "./suite.ts";

const cases = conformanceCases();

interface Backend {
  device: Device;
  /** Compiles every case's kernel, concurrently; one case's failure does not stop the rest. */
  kernels: Promise<PromiseSettledResult<DeviceKernel>[]>;
}

/** Registers one test per case; `open` runs on the first test, `skip` ignores them all. */
function suite(
  label: string,
  open: () => Backend,
  skip: string | null,
  has: (feature: string) => boolean = () => true,
) {
  let backend: Backend | null = null;
  for (const [i, c] of cases.entries()) {
    const why = skip ?? (c.requires && !has(c.requires) ? `the target lacks ${c.requires}` : null);
    Deno.test({
      name: `${label} kernel matches the float64 reference: ${c.name}${
        why ? ` (skipped: ${why})` : ""
      }`,
      ignore: why !== null,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async () => {
        backend ??= open();
        const k = (await backend.kernels)[i];
        if (k.status === "rejected") throw k.reason;
        await runCase(backend.device, k.value, c);
      },
    });
  }
}

suite("cpuKernel()", () => {
  const device = createCpuDevice();
  const kernels = Promise.allSettled(
    cases.map((c) =>
      device.kernels([{ spec: c.spec, source: cpuKernel(c.spec) }]).then((k) => k[0])
    ),
  );
  return { device, kernels };
}, null);

const gpu = await createWebGpuDevice().catch((e) => e as Error);
const gpuSkip = gpu === null
  ? "no WebGPU adapter on this machine (navigator.gpu.requestAdapter() gave none)"
  : gpu instanceof Error
  ? `WebGPU device could not be opened: ${gpu.message}`
  : null;

suite(
  "wgslKernel()",
  () => {
    const device = gpu as Exclude<typeof gpu, Error | null>;
    const kernels = Promise.allSettled(
      cases.map((c) =>
        Promise.resolve().then(() =>
          device.kernels([{ spec: c.spec, source: wgslKernel(c.spec, device.target) }])
        ).then((k) => k[0])
      ),
    );
    return { device, kernels };
  },
  gpuSkip,
  (f) => !(gpu instanceof Error) && gpu !== null && gpu.target.features.includes(f),
);

Deno.test({
  name: "wgslKernel() conformance cases ran (KILN_REQUIRE_WEBGPU=1 makes a missing adapter fail)",
  ignore: gpuSkip === null || Deno.env.get("KILN_REQUIRE_WEBGPU") !== "1",
  fn: () => {
    throw new Error(
      `KILN_REQUIRE_WEBGPU=1 but the WebGPU conformance cases were skipped: ${gpuSkip}`,
    );
  },
});

/** Every op of the contract: a new KernelSpec op fails type-checking here until it is listed
 * (and then this test fails until it has a case). */
const EVERY_OP: Record<KernelOp, true> = {
  embed: true,
  matmul: true,
  dequantize: true,
  rms_norm: true,
  add_rms_norm: true,
  add: true,
  sum_splits: true,
  quantize_q8: true,
  silu_mul: true,
  rope: true,
  kv_append: true,
  rope_kv_append: true,
  attention: true,
  attention_decode: true,
  attention_merge: true,
  take_rows: true,
  logits_process: true,
  argmax: true,
  softmax_temp: true,
  softmax_stats: true,
  sample_top_p: true,
  top_p_hist: true,
  top_p_gather: true,
};

Deno.test("conformanceCases() covers every kernel op", () => {
  const ops = new Set(cases.map((c: ConformanceCase) => c.spec.op));
  const all = Object.keys(EVERY_OP) as KernelOp[];
  const missing = all.filter((op) => !ops.has(op));
  if (missing.length) throw new Error(`no conformance case for ${missing.join(", ")}`);
  const names = new Set(cases.map((c) => c.name));
  if (names.size !== cases.length) throw new Error("two conformance cases share a name");
});
