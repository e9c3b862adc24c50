/**
 * GPU time by timestamp queries: around one compute pass (many back-to-back dispatches), around
 * each of several passes, or bracketing whatever is queued between `begin()` and `end()` (empty
 * passes that only write a timestamp). Needs a device opened with `timestamp-query`.
 * @module
 */

const MAX_QUERIES = 4096;

export class GpuTimer {
  readonly #gpu: GPUDevice;
  readonly #set: GPUQuerySet;
  readonly #resolve: GPUBuffer;

  constructor(gpu: GPUDevice) {
    if (!gpu.features.has("timestamp-query")) {
      throw new TypeError("GpuTimer needs a device opened with the timestamp-query feature");
    }
    this.#gpu = gpu;
    this.#set = gpu.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
    this.#resolve = gpu.createBuffer({
      size: MAX_QUERIES * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** Milliseconds of GPU time of one pass that `record` fills. */
  async pass(record: (pass: GPUComputePassEncoder) => void): Promise<number> {
    return (await this.passes(1, (_, p) => record(p)))[0];
  }

  /** Milliseconds of GPU time of each of `n` passes (pass i is filled by `record(i, pass)`). */
  async passes(
    n: number,
    record: (i: number, pass: GPUComputePassEncoder) => void,
  ): Promise<number[]> {
    if (n < 1 || 2 * n > MAX_QUERIES) {
      throw new RangeError(`passes(): n = ${n} is outside [1, ${MAX_QUERIES / 2}]`);
    }
    const enc = this.#gpu.createCommandEncoder();
    for (let i = 0; i < n; i++) {
      const p = enc.beginComputePass({
        timestampWrites: {
          querySet: this.#set,
          beginningOfPassWriteIndex: 2 * i,
          endOfPassWriteIndex: 2 * i + 1,
        },
      });
      record(i, p);
      p.end();
    }
    this.#gpu.queue.submit([enc.finish()]);
    const t = await this.#read(2 * n);
    return Array.from({ length: n }, (_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
  }

  /** Write the start timestamp now (in queue order). Flush earlier work of other encoders first. */
  begin(): void {
    this.#mark({ beginningOfPassWriteIndex: 0 });
  }

  /** Write the end timestamp; resolves to the milliseconds since `begin()` on the GPU clock. */
  async end(): Promise<number> {
    this.#mark({ endOfPassWriteIndex: 1 });
    const t = await this.#read(2);
    return Number(t[1] - t[0]) / 1e6;
  }

  destroy(): void {
    this.#set.destroy();
    this.#resolve.destroy();
  }

  #mark(w: { beginningOfPassWriteIndex?: number; endOfPassWriteIndex?: number }): void {
    const enc = this.#gpu.createCommandEncoder();
    enc.beginComputePass({ timestampWrites: { querySet: this.#set, ...w } }).end();
    this.#gpu.queue.submit([enc.finish()]);
  }

  async #read(count: number): Promise<BigInt64Array> {
    const staging = this.#gpu.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.#gpu.createCommandEncoder();
    enc.resolveQuerySet(this.#set, 0, count, this.#resolve, 0);
    enc.copyBufferToBuffer(this.#resolve, 0, staging, 0, count * 8);
    this.#gpu.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ);
      return new BigInt64Array(staging.getMappedRange().slice(0));
    } finally {
      staging.destroy();
    }
  }
}
