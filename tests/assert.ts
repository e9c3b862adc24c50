/**
 * Assertion helpers over `node:assert` (JSR's std is not reachable here).
 * @module
 */
import { rejects, throws } from "node:assert/strict";

/** `f` throws an instance of `cls` whose message includes `includes`. */
export function assertThrows(f: () => unknown, cls: new (...a: never[]) => Error, includes = ""): void {
  throws(f, (e: unknown) => e instanceof cls && (e as Error).message.includes(includes));
}

/** `f` rejects with an instance of `cls` whose message includes `includes`. */
export async function assertRejects(f: () => Promise<unknown>, cls: new (...a: never[]) => Error, includes = ""): Promise<void> {
  await rejects(f, (e: unknown) => {
    if (e instanceof cls && (e as Error).message.includes(includes)) return true;
    throw e;
  });
}

/** max |a - b| over max |b|. */
export function relMaxError(a: ArrayLike<number>, b: ArrayLike<number>): { err: number; scale: number; rel: number } {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`);
  let err = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { err, scale, rel: err / scale };
}
