/**
 * The `Prewarmer` the prewarm endpoint drives, and `jitPrewarmer()`, the one backed by the JIT's
 * `resolve()` (compile on a cache miss, convert weights, verify; nothing is served from it).
 * @module
 */
import { type CompilerModule, type JitPolicy, resolve, type Target } from "../jit/mod.ts";

/** A validated prewarm request; `model` is a real path inside a configured model root. */
export interface PrewarmRequest {
  readonly model: string;
  readonly quantization: string | null;
  readonly overrides: string | null;
  readonly opt: string | null;
}

/** One progress event (the JIT's `ProgressEvent` has this shape). */
export interface PrewarmProgress {
  readonly stage: string;
  readonly status: string;
  readonly message: string;
  readonly ms?: number;
  readonly key?: string;
  readonly done?: number;
  readonly total?: number;
}

export interface PrewarmOutcome {
  /** The library's cache key. */
  readonly key: string;
  readonly origin: "cache" | "compiled";
  readonly weightsOrigin: string | null;
  readonly weightsKey: string | null;
}

/** Builds (or finds) a model's library and weights ahead of traffic, reporting progress. */
export interface Prewarmer {
  run(req: PrewarmRequest, onProgress: (e: PrewarmProgress) => void): Promise<PrewarmOutcome>;
}

export interface JitPrewarmerOptions {
  readonly cacheRoot: string;
  readonly policy?: JitPolicy;
  /** A Target or a `detectTarget` spec ("auto", "webgpu", "cpu"); default "auto". */
  readonly target?: Target | string;
  /** The compiler to build with (default: compiler/mod.ts). */
  readonly compiler?: CompilerModule;
}

/** A `Prewarmer` that runs the JIT's `resolve()` with the request's options. */
export function jitPrewarmer(opts: JitPrewarmerOptions): Prewarmer {
  return Object.freeze({
    async run(req: PrewarmRequest, onProgress: (e: PrewarmProgress) => void) {
      const r = await resolve({
        model: req.model,
        quantization: req.quantization ?? undefined,
        overrides: req.overrides ?? undefined,
        opt: req.opt ?? undefined,
        target: opts.target,
        policy: opts.policy,
        cacheRoot: opts.cacheRoot,
        compiler: opts.compiler,
        onProgress,
        notify: (message) => onProgress({ stage: "detect", status: "progress", message }),
      });
      return {
        key: r.lib.key,
        origin: r.lib.origin,
        weightsOrigin: r.weights?.origin ?? null,
        weightsKey: r.weights?.key ?? null,
      };
    },
  });
}
