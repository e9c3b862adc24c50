/**
 * The `cache` sub-command: `cache ls | verify [--repair] | gc [--max-size 10G] | rm <key>`.
 * The root `mod.ts` calls `cacheCommand(args, jitOptions)` and exits with its return value.
 * @module
 */
import { parseArgs } from "node:util";
import { cacheGc, cacheLs, cacheRm, cacheVerify, formatBytes, parseSize } from "./cache_admin.ts";
import { formatCacheTable } from "./format.ts";
import type { JitOptions } from "./options.ts";

export const CACHE_USAGE =
  `usage: cache ls | verify [--repair] | gc [--max-size SIZE] | rm <key or prefix>
  ls      entries with sizes and last-use times
  verify  re-hash every file of every entry; --repair moves bad entries aside
  gc      delete dead builds and quarantined entries; --max-size evicts least recently used
  rm      delete one entry (a unique key prefix of 4+ hex digits is enough)`;

/** Run a cache sub-command; returns the exit code. `print` receives stdout text. */
export async function cacheCommand(
  args: string[],
  jit: Pick<JitOptions, "cacheRoot">,
  opts: { formatVersion?: number; print?: (text: string) => void } = {},
): Promise<number> {
  const print = opts.print ?? ((t: string) => console.log(t));
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { repair: { type: "boolean", default: false }, "max-size": { type: "string" } },
  });
  const root = jit.cacheRoot;
  switch (positionals[0]) {
    case "ls":
      print(`cache: ${root}\n${formatCacheTable(await cacheLs(root))}`);
      return 0;
    case "verify": {
      const rows = await cacheVerify(root, {
        formatVersion: opts.formatVersion,
        repair: values.repair,
      });
      for (const r of rows) {
        const tail = r.ok
          ? "ok"
          : `BAD: ${r.problems.join("; ")}${r.movedTo ? ` (moved to ${r.movedTo})` : ""}`;
        print(`${r.kind} ${r.key.slice(0, 16)} ${tail}`);
      }
      const bad = rows.filter((r) => !r.ok).length;
      print(`${rows.length} entries, ${bad} bad`);
      return bad ? 1 : 0;
    }
    case "gc": {
      const maxBytes = values["max-size"] === undefined ? undefined : parseSize(values["max-size"]);
      const r = await cacheGc(root, { maxBytes });
      for (const p of r.removed) print(`removed ${p}`);
      print(`freed ${formatBytes(r.freedBytes)}, ${formatBytes(r.keptBytes)} kept`);
      return 0;
    }
    case "rm": {
      if (!positionals[1]) throw new TypeError(`cache rm needs a key\n${CACHE_USAGE}`);
      print(`removed ${await cacheRm(root, positionals[1])}`);
      return 0;
    }
    default:
      throw new TypeError(
        `${
          positionals[0] ? `unknown cache command "${positionals[0]}"` : "no cache command"
        }\n${CACHE_USAGE}`,
      );
  }
}
