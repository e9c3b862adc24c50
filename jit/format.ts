/**
 * Text for the CLI: one line per progress event, and the `cache ls` table.
 * @module
 */
import { type CacheEntryInfo, formatBytes } from "./cache_admin.ts";
import type { ProgressEvent } from "./resolve.ts";

/** "[compile] done in 812 ms: compile finished" style line. */
export function formatProgress(e: ProgressEvent): string {
  const time = e.ms !== undefined ? ` in ${e.ms < 10 ? e.ms.toFixed(1) : Math.round(e.ms)} ms` : "";
  const frac = e.done !== undefined ? ` ${e.done}/${e.total}` : "";
  return `[${e.stage}] ${e.status}${frac}${time}: ${e.message}`;
}

/** The `cache ls` table: kind, key (first 16), size, last use, created, summary. */
export function formatCacheTable(entries: CacheEntryInfo[], now = new Date()): string {
  const rows = [["KIND", "KEY", "SIZE", "LAST USE", "BUILD", "WHAT"]];
  for (const e of entries) {
    rows.push([
      e.kind,
      e.key.slice(0, 16),
      formatBytes(e.bytes),
      ago(now.getTime() - e.lastUsedAt.getTime()),
      e.buildMs === null ? "?" : `${(e.buildMs / 1000).toFixed(1)} s`,
      e.summary,
    ]);
  }
  const total = entries.reduce((s, e) => s + e.bytes, 0);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) =>
    r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]) : c)).join("  ")
  );
  return [...lines, `${entries.length} entries, ${formatBytes(total)}`].join("\n");
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
