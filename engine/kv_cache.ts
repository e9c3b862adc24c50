/**
 * The paged KV cache's bookkeeping (the pages themselves are device buffers owned by the
 * runtime): a free list of pages and each sequence's page list. A sequence's position p lives in
 * its page floor(p / PAGE_SIZE), slot p % PAGE_SIZE.
 * @module
 */
import { PAGE_SIZE } from "../compiler/codegen/contract.ts";

export class KvCacheFullError extends Error {
  override name = "KvCacheFullError";
}

export class PagedKvCache {
  readonly #free: number[];
  readonly #seqs = new Map<number, number[]>();

  constructor(readonly numPages: number) {
    this.#free = Array.from({ length: numPages }, (_, i) => numPages - 1 - i);
  }

  get freePages(): number {
    return this.#free.length;
  }

  get usedPages(): number {
    return this.numPages - this.#free.length;
  }

  /** Make sure `seq` has pages for positions [0, length). */
  reserve(seq: number, length: number): void {
    const pages = this.#seqs.get(seq) ?? [];
    const need = Math.ceil(length / PAGE_SIZE) - pages.length;
    if (need > this.#free.length) {
      throw new KvCacheFullError(`KV cache full: sequence ${seq} needs ${need} more pages, ${this.#free.length} free`);
    }
    for (let i = 0; i < need; i++) pages.push(this.#free.pop()!);
    this.#seqs.set(seq, pages);
  }

  pages(seq: number): readonly number[] {
    return this.#seqs.get(seq) ?? [];
  }

  /** Free every page of `seq` at once. */
  release(seq: number): void {
    const pages = this.#seqs.get(seq);
    if (!pages) return;
    this.#free.push(...pages);
    this.#seqs.delete(seq);
  }
}
