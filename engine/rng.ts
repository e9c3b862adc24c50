/**
 * A small seeded generator for sampling draws (SplitMix32-style mixing of a 32-bit counter):
 * the same seed gives the same uniforms on every machine, so the same request with the same
 * seed samples the same tokens.
 * @module
 */
export class SamplingRng {
  #state: number;

  constructor(seed: number) {
    this.#state = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  }

  /** Uniform in [0, 1), with 24 bits (what an f32 can hold). */
  next(): number {
    let z = (this.#state = (this.#state + 0x9e3779b9) >>> 0);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return (z >>> 8) / 16777216;
  }
}
