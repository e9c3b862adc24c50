/**
 * The paged KV cache's bookkeeping (the pages themselves are device buffers owned by the
 * runtime): a free list of pages and each sequence's page list. A sequence's position p lives in
 * its page floor(p / PAGE_SIZE), slot p % PAGE_SIZE. Under a sliding window, pages that fell out
 * of every future query's window are given back while the sequence runs (its table keeps a
 * placeholder there, which no kernel reads): the rolling cache.
 * @module
 */
import { PAGE_SIZE } from "../compiler/codegen/contract.ts";

export class KvCacheFullError extends Error {
  override name = "KvCacheFullError";
}

const DROPPED = -1;

export class PagedKvCache {
  readonly #free: number[];
  /** Each sequence's pages by logical page; DROPPED where the window has passed. */
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

  /** The page table of `seq` (dropped pages read as page 0: never read by a kernel). */
  pages(seq: number): readonly number[] {
    return (this.#seqs.get(seq) ?? []).map((p) => (p === DROPPED ? 0 : p));
  }

  /** Logical pages `seq` has (held or dropped). */
  length(seq: number): number {
    return this.#seqs.get(seq)?.length ?? 0;
  }

  /** Give back the pages of `seq` that hold only positions before `position`. */
  dropBefore(seq: number, position: number): void {
    const pages = this.#seqs.get(seq);
    if (!pages) return;
    const end = Math.min(pages.length, Math.floor(position / PAGE_SIZE));
    for (let i = 0; i < end; i++) {
      if (pages[i] === DROPPED) continue;
      this.#free.push(pages[i]);
      pages[i] = DROPPED;
    }
  }

  /** Free every page of `seq` at once. */
  release(seq: number): void {
    const pages = this.#seqs.get(seq);
    if (!pages) return;
    this.#free.push(...pages.filter((p) => p !== DROPPED));
    this.#seqs.delete(seq);
  }
}
