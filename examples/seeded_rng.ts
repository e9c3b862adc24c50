/**
 * A small seeded random number generator for reproducible example weights.
 *
 * Algorithm: xoshiro128** (Blackman & Vigna, 2018) over four u32 words, seeded from a
 * non-negative safe integer by two SplitMix64 outputs (the low then high 32 bits of each become
 * s0..s3). Normals come from the Box-Muller transform, using both outputs of each pair:
 * u1 = (x1 + 0.5) / 2^32 (never 0), u2 = x2 / 2^32, r = sqrt(-2 ln u1),
 * z0 = r cos(2π u2), z1 = r sin(2π u2). The same seed gives the same stream on every platform
 * that runs V8 (its Math.log/cos/sin are fdlibm ports, not the C library's).
 * @module
 */

const MASK64 = (1n << 64n) - 1n;

function splitMix64(state: bigint): [next: bigint, out: bigint] {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK64;
  let z = next;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return [next, z ^ (z >> 31n)];
}

/**
 * Seeded xoshiro128** generator with uniform and normal draws.
 *
 * @example
 * ```ts
 * import { SeededRng } from "./seeded_rng.ts";
 * const rng = new SeededRng(42);
 * const x = rng.normal(); // a standard normal draw; the same on every run
 * ```
 */
export class SeededRng {
  #s = new Uint32Array(4);
  #spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`SeededRng: seed must be a non-negative safe integer, got ${seed}`);
    }
    let st = BigInt(seed);
    for (let i = 0; i < 2; i++) {
      const [next, out] = splitMix64(st);
      st = next;
      this.#s[2 * i] = Number(out & 0xffffffffn);
      this.#s[2 * i + 1] = Number(out >> 32n);
    }
  }

  /** The next u32 of the xoshiro128** stream. */
  nextU32(): number {
    const s = this.#s;
    const x = Math.imul(s[1], 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 11) | (s[3] >>> 21);
    return result;
  }

  /** A standard normal draw (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.#spare !== null) {
      const z = this.#spare;
      this.#spare = null;
      return z;
    }
    const u1 = (this.nextU32() + 0.5) / 4294967296;
    const u2 = this.nextU32() / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1));
    this.#spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** `n` draws of mean + std·N(0,1), rounded to float32. */
  normals(n: number, mean: number, std: number): Float32Array { // [n]
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
}
