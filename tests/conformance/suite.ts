/**
 * Runs one conformance case on a device and compares every written binding with the float64
 * reference, throwing an error that names the binding, the worst element and the tolerance.
 * @module
 */
import { bindings, kvF16, q8OutWidth } from "../../compiler/codegen/contract.ts";
import type { Device, DeviceKernel } from "../../engine/device.ts";
import { type ConformanceCase, TOL } from "./case.ts";
import { halvesOf, q8RowsDecoded, reference, type RefOutputs } from "./reference.ts";

const expected = new WeakMap<ConformanceCase, RefOutputs>();

/** The reference outputs of a case (computed once, shared by every device). */
export function expectedOutputs(c: ConformanceCase): RefOutputs {
  let e = expected.get(c);
  if (!e) expected.set(c, e = reference(c.spec, c.inputs, c.rows));
  return e;
}

/** Compares one written binding; returns a description of the failure or null. Non-finite
 * reference values (a -inf mask) must be matched exactly; finite ones within `tol` x the largest
 * finite |ref|. */
export function compareBinding(
  name: string,
  actual: Float32Array | Uint32Array,
  ref: Float64Array | Uint32Array,
  tol: number,
): string | null {
  if (actual.length !== ref.length) {
    return `${name}: ${actual.length} elements, expected ${ref.length}`;
  }
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isFinite(ref[i])) maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  const allowed = tol * maxRef;
  let worst = -1, worstErr = -1, bad = 0;
  for (let i = 0; i < ref.length; i++) {
    const want = ref instanceof Float64Array ? Math.fround(ref[i]) : ref[i];
    let err: number, fails: boolean;
    if (!Number.isFinite(ref[i])) {
      fails = !(Object.is(actual[i], want) || (Number.isNaN(actual[i]) && Number.isNaN(want)));
      err = fails ? Infinity : 0;
    } else {
      err = Number.isNaN(actual[i]) ? Infinity : Math.abs(actual[i] - (tol === 0 ? want : ref[i]));
      fails = tol === 0 ? actual[i] !== want : !(err <= allowed);
    }
    if (fails) bad++;
    if (err > worstErr) worstErr = err, worst = i;
  }
  if (bad === 0) return null;
  return `${name}: ${bad} of ${ref.length} elements off; worst at [${worst}]: got ${
    actual[worst]
  }, ` +
    `expected ${ref[worst]} (|err| ${worstErr.toPrecision(3)}, allowed ${
      tol === 0 ? "exact" : allowed.toPrecision(3)
    }` +
    ` = ${tol} x max|ref| ${maxRef.toPrecision(3)})`;
}

/** Uploads the case's inputs, dispatches `kernel` once, reads every written binding back and
 * throws if any differs from the reference beyond the case's tolerance. */
export async function runCase(
  device: Device,
  kernel: DeviceKernel,
  c: ConformanceCase,
): Promise<void> {
  const bs = bindings(c.spec);
  const bufs = c.inputs.map((data, i) => {
    const b = device.createBuffer(data.byteLength, `${c.spec.op}.${bs[i].name}`);
    device.write(b, new Uint8Array(data));
    return b;
  });
  try {
    device.dispatch(kernel, bufs, c.rows);
    const ref = expectedOutputs(c);
    const failures: string[] = [];
    for (let i = 0; i < bs.length; i++) {
      // (scratch: written, but not part of the contract)
      if (bs[i].access !== "read_write" || bs[i].scratch) continue;
      const bytes = await device.read(bufs[i]);
      const codesK = bs[i].name === "out" ? q8OutWidth(c.spec) : null;
      if (codesK !== null) {
        // quantize_q8 rows, int8 codes and f32 scales in one buffer: compared decoded, values
        // and code sums
        const got = q8RowsDecoded(bytes, c.rows, codesK);
        // (the block scales at f32 tolerance whatever the case's: a code may move at a tie,
        // a block's d may not)
        const scaleTol = Math.min(c.tol, TOL.f32);
        for (
          const [name, a, tol] of [
            ["out", got.values, c.tol],
            ["out_sums", got.sums, c.tol],
            ["out_scales", got.scales, scaleTol],
          ] as const
        ) {
          const f = compareBinding(name, Float32Array.from(a), ref[name], tol);
          if (f) failures.push(f);
        }
        continue;
      }
      const want = ref[bs[i].name];
      const got = want instanceof Uint32Array
        ? new Uint32Array(bytes)
        : bs[i].name === "cache" && kvF16(c.spec)
        ? Float32Array.from(halvesOf(bytes)) // an f16 cache
        : new Float32Array(bytes);
      const f = compareBinding(bs[i].name, got, want, c.tols?.[bs[i].name] ?? c.tol);
      if (f) failures.push(f);
    }
    if (failures.length) {
      throw new Error(`${device.backend} ${c.name}:\n  ${failures.join("\n  ")}`);
    }
  } finally {
    for (const b of bufs) device.release(b);
  }
}
