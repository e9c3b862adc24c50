/**
 * The shared conformance case list: every backend runs exactly these cases (like Hono's
 * `common.case.test.ts`) and compares each written binding with the float64 reference.
 * Seeded, so a case is the same on every run and every machine.
 *
 * @example
 * ```ts
 * import { conformanceCases } from "./cases.ts";
 * const ops = new Set(conformanceCases().map((c) => c.spec.op));
 * console.assert(ops.has("attention"));
 * ```
 * @module
 */
import type { ConformanceCase } from "./case.ts";
import { denseCases } from "./cases_dense.ts";
import { matmulCases } from "./cases_matmul.ts";
import { pagedCases } from "./cases_paged.ts";
import { samplingCases } from "./cases_sampling.ts";

export type { ConformanceCase } from "./case.ts";

/** Every conformance case, generated from `seed`. */
export function conformanceCases(seed = 0x6b696c6e): ConformanceCase[] {
  return [
    ...denseCases(seed),
    ...matmulCases(seed + 3),
    ...pagedCases(seed + 1),
    ...samplingCases(seed + 2),
  ];
}
