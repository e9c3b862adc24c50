/**
 * The JIT's configuration as a typed, frozen record. Only the root `mod.ts` reads the
 * environment: it calls `jitOptionsFromEnv(Deno.env.toObject())` and passes the result down.
 * @module
 */
import { join } from "node:path";

/**
 * - ON: use the cache, compile (or convert) on a miss — the default.
 * - OFF: never compile or convert; a miss is an error naming the key and its inputs.
 * - REDO: always recompile and replace the entry.
 * - READONLY: use the cache, never write to it (no compile, no lock, no last-use update).
 */
export type JitPolicy = "ON" | "OFF" | "REDO" | "READONLY";
export const JIT_POLICIES: readonly JitPolicy[] = ["ON", "OFF", "REDO", "READONLY"];

export interface JitOptions {
  readonly policy: JitPolicy;
  /** Cache root: holds lib/, weights/, locks/, tmp/, quarantine/. */
  readonly cacheRoot: string;
}

/** Read `KILN_JIT_POLICY` and the cache root (`$KILN_HOME`, else `$XDG_CACHE_HOME/kiln`, else
 * `~/.cache/kiln`) from an environment record. Throws RangeError for an unknown policy. */
export function jitOptionsFromEnv(env: Record<string, string | undefined>): JitOptions {
  const raw = (env.KILN_JIT_POLICY ?? "ON").trim().toUpperCase() || "ON";
  if (!(JIT_POLICIES as readonly string[]).includes(raw)) {
    throw new RangeError(
      `KILN_JIT_POLICY=${env.KILN_JIT_POLICY} is not one of ${JIT_POLICIES.join(", ")}`,
    );
  }
  return Object.freeze({ policy: raw as JitPolicy, cacheRoot: cacheRootFromEnv(env) });
}

/** The cache root from an environment record. Throws TypeError when no candidate is set. */
export function cacheRootFromEnv(env: Record<string, string | undefined>): string {
  if (env.KILN_HOME) return env.KILN_HOME;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, "kiln");
  const home = env.HOME ?? env.USERPROFILE;
  if (home) return join(home, ".cache", "kiln");
  throw new TypeError("cannot place the Kiln cache: set KILN_HOME (or XDG_CACHE_HOME, or HOME)");
}
