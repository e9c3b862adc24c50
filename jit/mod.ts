/**
 * The JIT runtime loader: `deno run -A mod.ts --model <dir>` just works. Detect the hardware,
 * find the compiled library in the cache or build it on demand (once, across processes), find
 * or convert the weights, verify everything, and hand both to the engine.
 *
 * Cache root (`jitOptionsFromEnv`): `$KILN_HOME`, else `$XDG_CACHE_HOME/kiln`, else
 * `~/.cache/kiln`, holding `lib/<key>/` (manifest.json, metadata.json, lib.js, entry.json),
 * `weights/<key>/` (HF weights converted to MLC format), `locks/`, `tmp/` (builds in progress),
 * `quarantine/` (entries that failed verification), `failures/`, `digests/`.
 * Key: sha256 of the canonical JSON of the normalised config, model type, quantization,
 * overrides, opt flags, target fingerprint, system lib prefix, compiler and artifact versions.
 * Policy (`KILN_JIT_POLICY`): ON (default) | OFF (never build) | REDO (always rebuild) |
 * READONLY (never write). Every file is re-hashed before lib.js is imported.
 *
 * ```ts
 * import { jitOptionsFromEnv, resolve } from "./jit/mod.ts";
 * const jit = jitOptionsFromEnv(Deno.env.toObject());
 * const r = await resolve({ model: "examples/models/tiny-llama", ...jit, onProgress: console.log });
 * // r.lib.module: the imported lib.js; r.weights.dir: an MLC weight folder; r.adapter: the GPU
 * ```
 * @module
 */
export { resolve } from "./resolve.ts";
export type {
  ProgressEvent,
  ProgressStage,
  Resolved,
  ResolvedLibrary,
  ResolveOptions,
} from "./resolve.ts";
export { cacheRootFromEnv, JIT_POLICIES, jitOptionsFromEnv } from "./options.ts";
export type { JitOptions, JitPolicy } from "./options.ts";
export {
  cpuTarget,
  detectTarget,
  genericWebgpuTarget,
  makeTarget,
  targetFingerprint,
  targetFromAdapter,
} from "./hardware.ts";
export type { Target } from "./hardware.ts";
export { cacheGc, cacheLs, cacheRm, cacheVerify, formatBytes, parseSize } from "./cache_admin.ts";
export type { CacheEntryInfo } from "./cache_admin.ts";
export { cacheKey } from "./cache_key.ts";
export { formatCacheTable, formatProgress } from "./format.ts";
export { CACHE_USAGE, cacheCommand } from "./cache_cli.ts";
export type { LibKeyInputs, WeightsKeyInputs } from "./cache_key.ts";
export { checkMlcWeights, isMlcWeightDir } from "./mlc_weights.ts";
export type { ResolvedWeights } from "./weights.ts";
export {
  CacheMissError,
  IntegrityError,
  LibraryLoadError,
  LockTimeoutError,
  TargetError,
} from "./errors.ts";
export type { CompilerModule } from "./compiler_api.ts";
