/**
 * A loaded model: library + device + weights + KV cache, with `forward()` over a batch of
 * sequence chunks. Picks the library function by shape (decode, prefill, batch_decode,
 * batch_prefill) and splits work at the function bounds.
 * @module
 */
import type { Device, DeviceBuffer } from "./device.ts";
import { createCpuDevice } from "./devices/cpu.ts";
import { createWebGpuDevice } from "./devices/webgpu.ts";
import { type Library, loadLibrary } from "./library.ts";
import type { CompileMetadata } from "../compiler/metadata.ts";
import { ModelRuntime } from "./runtime.ts";
import { PagedKvCache } from "./kv_cache.ts";
import { openWeights } from "./weights.ts";

/** Tokens to run for one sequence, starting at position `start`. */
export interface SeqChunk {
  seq: number;
  tokens: number[];
  start: number;
}

export interface LoadOptions {
  /** Folder of the compiled library (lib.js, metadata.json), or a library already imported. */
  lib: string | Library;
  /** Model weights: an MLC-format folder or a Hugging Face folder. */
  weights: string;
  /** KV pages (each PAGE_SIZE tokens of every layer); default: 4 sequences' worth, at most 4096. */
  numPages?: number;
  device?: Device;
}

export class Model {
  readonly kv: PagedKvCache;

  private constructor(readonly lib: Library, readonly runtime: ModelRuntime) {
    this.kv = new PagedKvCache(runtime.numPages);
  }

  static async load(opts: LoadOptions): Promise<Model> {
    const lib = typeof opts.lib === "string" ? await loadLibrary(opts.lib) : opts.lib;
    const device = opts.device ??
      (lib.target.backend === "webgpu" ? await createWebGpuDevice() : createCpuDevice());
    if (!device) throw new Error("this library targets WebGPU but no WebGPU adapter is available; compile for --target cpu");
    const weights = await openWeights(opts.weights, lib.metadata);
    const perSeq = lib.metadata.kv_pages_per_sequence;
    const numPages = opts.numPages ?? Math.min(perSeq * 4, 4096);
    return new Model(lib, await ModelRuntime.create(lib, device, weights, { numPages }));
  }

  get metadata(): CompileMetadata {
    return this.lib.metadata;
  }

  /**
   * Run chunks of several sequences; returns logits [rows, vocab] for the last token of each
   * chunk (or for every token with `all`). Long work is split at the function bounds.
   */
  async forward(chunks: SeqChunk[], opts: { all?: boolean } = {}): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    const md = this.metadata;
    if (opts.all) {
      // one sequence at a time, pieces of at most min(chunk, max_batch) tokens, every row's logits
      const piece = Math.min(md.prefill_chunk_size, md.max_batch_size);
      for (const c of chunks) {
        for (let i = 0; i < c.tokens.length; i += piece) {
          const t = c.tokens.slice(i, i + piece);
          out.push(...await this.#call("batch_prefill", [{ seq: c.seq, tokens: t, start: c.start + i }], true));
        }
      }
      return out;
    }
    const decode = chunks.every((c) => c.tokens.length === 1);
    if (decode) {
      for (let i = 0; i < chunks.length; i += md.max_batch_size) {
        const group = chunks.slice(i, i + md.max_batch_size);
        out.push(...await this.#call(group.length === 1 ? "decode" : "batch_decode", group, false));
      }
      return out;
    }
    for (const c of chunks) {
      // prefill in pieces of prefill_chunk_size; the last piece gives the logits
      let logits: Float32Array[] = [];
      for (let i = 0; i < c.tokens.length; i += md.prefill_chunk_size) {
        const t = c.tokens.slice(i, i + md.prefill_chunk_size);
        logits = await this.#call("prefill", [{ seq: c.seq, tokens: t, start: c.start + i }], false);
      }
      out.push(...logits);
    }
    return out;
  }

  async #call(name: string, chunks: SeqChunk[], all: boolean): Promise<Float32Array[]> {
    const { m, fn } = this.run(name, chunks, all);
    const V = this.metadata.vocab_size;
    const data = new Float32Array(await this.runtime.read(fn, "logits", m * V * 4));
    return Array.from({ length: m }, (_, i) => data.subarray(i * V, (i + 1) * V));
  }

  /**
   * Queue one forward call over `chunks` (reserving their KV pages); the logits of the last
   * token of each chunk (every token with `all`) stay on the device in
   * `runtime.output(fn, "logits")` of the function that ran (`fn`, or its `_small` variant when
   * the call fits it). `bind` replaces inputs by device buffers (e.g. `input_ids` by the
   * sampler's tokens). Returns the number of logit rows and the function.
   */
  run(fn: string, chunks: SeqChunk[], all = false, bind: Record<string, DeviceBuffer> = {}, keep?: ReadonlySet<string>): { m: number; fn: string } {
    const n = chunks.reduce((a, c) => a + c.tokens.length, 0);
    const ids = new Uint32Array(n), positions = new Uint32Array(n), tokSeq = new Uint32Array(n);
    const indptr = new Uint32Array(chunks.length + 1);
    const pages: number[] = [];
    const lastIdx: number[] = [];
    let r = 0;
    const window = this.metadata.sliding_window_size;
    chunks.forEach((c, s) => {
      this.kv.reserve(c.seq, c.start + c.tokens.length);
      // rolling cache: the earliest query here sees positions from c.start - window + 1 on
      if (window > 0) this.kv.dropBefore(c.seq, c.start - window + 1);
      c.tokens.forEach((t, j) => {
        ids[r] = t;
        positions[r] = c.start + j;
        tokSeq[r] = s;
        if (all || j === c.tokens.length - 1) lastIdx.push(r);
        r++;
      });
      pages.push(...this.kv.pages(c.seq));
      indptr[s + 1] = pages.length;
    });
    const m = lastIdx.length;
    // a call that fits the small variant runs it (GEMV-shaped matmuls)
    const small = this.lib.plan.functions[`${fn}_small`]?.bounds;
    if (small && n <= small.n && chunks.length <= small.s && m <= small.m) fn = `${fn}_small`;
    this.runtime.run(fn, {
      input_ids: ids,
      positions,
      tok_seq: tokSeq,
      page_indptr: indptr,
      page_indices: new Uint32Array(pages),
      last_idx: new Uint32Array(lastIdx),
    }, { n, s: chunks.length, m }, bind, keep);
    return { m, fn };
  }

  destroy(): void {
    this.runtime.destroy();
  }
}
