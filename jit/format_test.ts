import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatCacheTable, formatProgress } from "./format.ts";

Deno.test("formatProgress() writes stage, status, counts and time", () => {
  assertEquals(
    formatProgress({ stage: "compile", status: "done", ms: 812.4, message: "compile finished" }),
    "[compile] done in 812 ms: compile finished",
  );
  assertEquals(
    formatProgress({ stage: "convert", status: "progress", done: 3, total: 9, message: "lm_head" }),
    "[convert] progress 3/9: lm_head",
  );
});

Deno.test("formatCacheTable() aligns columns and totals sizes", () => {
  const now = new Date("2026-01-01T12:00:00Z");
  const table = formatCacheTable([
    {
      kind: "lib",
      key: "ab".repeat(32),
      dir: "/c/lib/x",
      bytes: 2048,
      createdAt: null,
      lastUsedAt: new Date("2026-01-01T11:58:00Z"),
      buildMs: 1500,
      summary: "llama q4f16_1 target 0123456789ab",
    },
    {
      kind: "weights",
      key: "cd".repeat(32),
      dir: "/c/weights/y",
      bytes: 3 * 2 ** 20,
      createdAt: null,
      lastUsedAt: new Date("2025-12-30T12:00:00Z"),
      buildMs: null,
      summary: "weights q4f16_1 from /m",
    },
  ], now);
  assertEquals(table.split("\n"), [
    "KIND     KEY               SIZE     LAST USE   BUILD  WHAT",
    "lib      abababababababab  2.0 KiB  2 min ago  1.5 s  llama q4f16_1 target 0123456789ab",
    "weights  cdcdcdcdcdcdcdcd  3.0 MiB  2 d ago    ?      weights q4f16_1 from /m",
    "2 entries, 3.0 MiB",
  ]);
});
