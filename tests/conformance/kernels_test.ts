/**
 * The kernel conformance suite: every case of `cases.ts` on every available device: the CPU
 * device always, the WebGPU device when an adapter exists (otherwise its cases are listed as
 * ignored, with the reason in their names).
 * @module
 */
import { cpuKernel } from "../../compiler/codegen/cpu/mod.ts";
import type { Device, DeviceKernel } from "../../engine/device.ts";
import { createCpuDevice } from "../../engine/devices/cpu.ts";
import { type ConformanceCase, conformanceCases } from "./cases.ts";
import { runCase } from "./suite.ts";

const cases = conformanceCases();

/** Registers one test per case on a device whose kernels are compiled up front. */
function suite(
  label: string,
  setup: () => Promise<{ device: Device; kernels: DeviceKernel[] }>,
  skip: string | null,
) {
  let ready: Promise<{ device: Device; kernels: DeviceKernel[] }> | null = null;
  for (const [i, c] of cases.entries()) {
    Deno.test({
      name: `${label} kernel matches the float64 reference: ${c.name}${
        skip ? ` (skipped: ${skip})` : ""
      }`,
      ignore: skip !== null,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async () => {
        ready ??= setup();
        const { device, kernels } = await ready;
        await runCase(device, kernels[i], c);
      },
    });
  }
}

suite("cpuKernel()", async () => {
  const device = createCpuDevice();
  const kernels = await device.kernels(
    cases.map((c) => ({ spec: c.spec, source: cpuKernel(c.spec) })),
  );
  return { device, kernels };
}, null);

Deno.test("conformanceCases() covers every kernel op", () => {
  const ops = new Set(cases.map((c: ConformanceCase) => c.spec.op));
  const all = [
    "embed",
    "matmul",
    "dequantize",
    "rms_norm",
    "add_rms_norm",
    "add",
    "silu_mul",
    "rope",
    "kv_append",
    "rope_kv_append",
    "attention",
    "take_rows",
    "argmax",
    "softmax_temp",
    "sample_top_p",
  ];
  const missing = all.filter((op) => !ops.has(op as ConformanceCase["spec"]["op"]));
  if (missing.length) throw new Error(`no conformance case for ${missing.join(", ")}`);
  const names = new Set(cases.map((c) => c.name));
  if (names.size !== cases.length) throw new Error("two conformance cases share a name");
});
