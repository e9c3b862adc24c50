/**
 * `logits_process` on every device against a float64 reference. Kept beside the suite (not in
 * its case list) because its outputs hold -inf, which the suite's relative-error comparison does
 * not handle: here finite values are compared with a tolerance and the -inf mask exactly.
 * @module
 */
import { ok } from "node:assert/strict";
import type { KernelSpec } from "../../compiler/codegen/contract.ts";
import { cpuKernel } from "../../compiler/codegen/cpu/mod.ts";
import { wgslKernel } from "../../compiler/codegen/webgpu/mod.ts";
import type { Device } from "../../engine/device.ts";
import { createCpuDevice } from "../../engine/devices/cpu.ts";
import { createWebGpuDevice } from "../../engine/devices/webgpu.ts";
import { Rng } from "./helpers.ts";

interface Entry { token: number; count: number; inPrompt: boolean; bias: number }
interface Row { presence: number; frequency: number; repetition: number; topK: number; entries: Entry[] }

/** float64 reference, written from the contract's words. */
function reference(x: Float32Array, rows: Row[], V: number): Float64Array {
  const out = Float64Array.from(x);
  rows.forEach((row, r) => {
    for (const e of row.entries) {
      let l = x[r * V + e.token] + e.bias;
      if (e.count > 0 || e.inPrompt) l = l > 0 ? l / row.repetition : l * row.repetition;
      l -= row.presence * (e.count > 0 ? 1 : 0) + row.frequency * e.count;
      out[r * V + e.token] = l;
    }
    if (row.topK >= 1 && row.topK < V) {
      const vals = Array.from(out.subarray(r * V, (r + 1) * V)).sort((a, b) => b - a);
      const kth = vals[row.topK - 1];
      for (let c = 0; c < V; c++) if (out[r * V + c] < kth) out[r * V + c] = -Infinity;
    }
  });
  return out;
}

function makeCase(rng: Rng, V: number, R: number) {
  const x = new Float32Array(R * V).map(() => Math.fround(rng.normal() * 3)); // [R, V]
  const rows: Row[] = [];
  for (let r = 0; r < R; r++) {
    const tokens = new Set<number>();
    const n = r === 0 ? 0 : 1 + rng.int(20);
    while (tokens.size < n) tokens.add(rng.int(V));
    rows.push({
      presence: r % 3 === 0 ? 0 : Math.fround(rng.next()),
      frequency: r % 4 === 1 ? 0 : Math.fround(rng.next() * 0.5),
      repetition: r % 2 === 0 ? 1 : Math.fround(1 + rng.next()),
      topK: [0, 1, 5, 40, V, V - 1][r % 6],
      entries: [...tokens].map((token) => ({ token, count: rng.int(3), inPrompt: rng.next() < 0.5, bias: rng.next() < 0.3 ? Math.fround(rng.normal() * 5) : 0 })),
    });
  }
  const indptr = new Uint32Array(R + 1);
  rows.forEach((row, r) => (indptr[r + 1] = indptr[r] + row.entries.length));
  const entries = new ArrayBuffer(Math.max(4, indptr[R] * 16));
  const u = new Uint32Array(entries), f = new Float32Array(entries);
  rows.flatMap((row) => row.entries).forEach((e, i) => {
    u[i * 4] = e.token;
    f[i * 4 + 1] = e.count;
    u[i * 4 + 2] = e.inPrompt ? 1 : 0;
    f[i * 4 + 3] = e.bias;
  });
  const params = Float32Array.from(rows.flatMap((r) => [r.presence, r.frequency, r.repetition, r.topK]));
  return { x, rows, inputs: [x.buffer, indptr.buffer, entries, params.buffer] };
}

async function check(device: Device, label: string, source: (spec: KernelSpec) => Parameters<Device["kernel"]>[1]) {
  const rng = new Rng(0x10c175);
  for (const [V, R] of [[1000, 13], [37, 7], [32000, 3]]) {
    const c = makeCase(rng, V, R);
    const spec: KernelSpec = { op: "logits_process", vocab: V };
    const [k] = await device.kernels([{ spec, source: source(spec) }]);
    const bufs = [...c.inputs, new ArrayBuffer(R * V * 4)].map((b, i) => {
      const buf = device.createBuffer(b.byteLength, `b${i}`);
      device.write(buf, new Uint8Array(b));
      return buf;
    });
    device.dispatch(k, bufs, R);
    const got = new Float32Array(await device.read(bufs[4]));
    const ref = reference(c.x, c.rows, V);
    let scale = 0;
    for (const v of ref) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < ref.length; i++) {
      if (!Number.isFinite(ref[i])) ok(got[i] === -Infinity, `${label} V=${V}: [${i}] should be masked, got ${got[i]}`);
      else ok(Math.abs(got[i] - ref[i]) <= 1e-6 * scale, `${label} V=${V}: [${i}] = ${got[i]}, want ${ref[i]}`);
    }
    for (const b of bufs) device.release(b);
  }
}

Deno.test("cpuKernel() logits_process matches the float64 reference (penalties, bias, top-k mask)", async () => {
  await check(createCpuDevice(), "cpu", (spec) => cpuKernel(spec));
});

const gpu = await createWebGpuDevice().catch(() => null);
Deno.test({
  name: "wgslKernel() logits_process matches the float64 reference (penalties, bias, top-k mask)",
  ignore: !gpu,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await check(gpu!, "webgpu", (spec) => wgslKernel(spec, gpu!.target));
  },
});
