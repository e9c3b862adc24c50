/**
 * Conversions between float32 and the 16-bit float formats weights are stored in.
 * f16 uses the runtime's Float16Array (IEEE binary16, round to nearest even);
 * bf16 keeps the upper 16 bits of the float32 pattern, rounded to nearest even.
 * @module
 */

/** float32 → IEEE half bit patterns (round to nearest even; overflow → ±Inf; NaN stays NaN). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const out = new Float16Array(src.length);
  out.set(src);
  return new Uint16Array(out.buffer, out.byteOffset, out.length);
}

/** IEEE half bit patterns → float32 (exact). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const half = new Float16Array(src.buffer, src.byteOffset, src.length);
  return Float32Array.from(half);
}

/** float32 → bfloat16 bit patterns (round to nearest even; NaN stays a quiet NaN). */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) {
      out[i] = (b >>> 16) | 0x0040; // NaN: keep sign, force a quiet mantissa bit
    } else {
      out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** bfloat16 bit patterns → float32 (exact). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
