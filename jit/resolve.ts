/**
 * `resolve()`: everything between a model folder and a running engine. Detect the target,
 * key the library, find it in the cache or compile it (once, across processes), verify and
 * import it; find or convert the weights. Reports progress events with times; used by the CLI,
 * the engine's start-up fallback and the prewarm endpoint.
 * @module
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../compiler/errors.ts";
import { cacheKey, type LibKeyInputs } from "./cache_key.ts";
import { type CompilerModule, loadCompiler } from "./compiler_api.ts";
import { digestFile } from "./digest.ts";
import type { EntryEvent } from "./ensure_entry.ts";
import { ensureEntry } from "./ensure_entry.ts";
import { IntegrityError, LibraryLoadError } from "./errors.ts";
import { detectTarget, type Target } from "./hardware.ts";
import { exists } from "./store.ts";
import type { JitPolicy } from "./options.ts";
import { type ResolvedWeights, resolveWeights } from "./weights.ts";

export type ProgressStage = "detect" | "compile" | "convert" | "load";

export interface ProgressEvent {
  stage: ProgressStage;
  /** start/done bracket a stage (done carries `ms`); wait: another process holds the key's
   * lock; repair: a bad entry was moved aside; progress: conversion steps. */
  status: "start" | "done" | "wait" | "repair" | "progress";
  message: string;
  ms?: number;
  /** The library's cache key (on library events from the moment it is known; weight events
   * name their own key in the message). */
  key?: string;
  done?: number;
  total?: number;
}

export interface ResolveOptions {
  /** Model folder: HF (config.json + safetensors) or MLC (mlc-chat-config.json + shards). */
  model: string;
  /** Required for HF folders; for MLC folders it must match mlc-chat-config.json (or be omitted). */
  quantization?: string;
  modelType?: string;
  overrides?: string;
  opt?: string;
  systemLibPrefix?: string;
  debugDump?: string;
  /** A Target, or a `detectTarget` spec ("auto", "webgpu", "cpu", JSON). Default "auto". */
  target?: Target | string;
  policy?: JitPolicy;
  cacheRoot: string;
  /** Resolve weights too (default true). */
  weights?: boolean;
  /** "remembered" (default): a weight file's digest taken on an earlier start is reused while
   * the file is unchanged (size, mtime, ctime, inode); "full": re-hash every shard each time.
   * The library is always re-hashed in full. */
  weightsVerify?: "remembered" | "full";
  /** The compiler to build with (default: compiler/mod.ts). */
  compiler?: CompilerModule;
  lockTimeoutMs?: number;
  onProgress?: (e: ProgressEvent) => void;
  /** One-line notices (no adapter → CPU). Default console.error. */
  notify?: (message: string) => void;
}

export interface ResolvedLibrary {
  key: string;
  dir: string;
  inputs: LibKeyInputs;
  metadata: Record<string, unknown>;
  /** The imported lib.js module. */
  module: Record<string, unknown>;
  origin: "cache" | "compiled";
  bytes: number;
}

export interface Resolved {
  target: Target;
  /** The adapter detected (null for the CPU or a described target): create the device on it. */
  adapter: GPUAdapter | null;
  lib: ResolvedLibrary;
  weights: ResolvedWeights | null;
  /** keyMs: loading the compiler and the model config, past what overlapped detection. */
  timings: { detectMs: number; keyMs: number; libMs: number; importMs: number; weightsMs: number };
}

/** Resolve a model folder to an imported library and a weight folder. */
export async function resolve(opts: ResolveOptions): Promise<Resolved> {
  const emit = opts.onProgress ?? (() => {});
  const policy = opts.policy ?? "ON";
  const requestedAt = Date.now();

  // The compiler's module and the model config load while the adapter is requested.
  let t = performance.now();
  const configP = (async () => {
    const compiler = opts.compiler ?? await loadCompiler();
    return { compiler, ...(await compiler.loadModelConfig(opts.model, opts.overrides)) };
  })();
  configP.catch(() => {}); // awaited below; an early rejection is not unhandled
  emit({ stage: "detect", status: "start", message: "detecting hardware" });
  const { target, adapter } = typeof opts.target === "object"
    ? { target: opts.target, adapter: null }
    : await detectTarget({ target: opts.target, notify: opts.notify });
  const detectMs = performance.now() - t;
  emit({ stage: "detect", status: "done", ms: detectMs, message: target.description });

  t = performance.now();
  const { compiler, normalized, format } = await configP;
  const quantization = await pickQuantization(opts.model, format, opts.quantization);
  const inputs: LibKeyInputs = {
    kind: "lib",
    model_config: normalized,
    model_type: opts.modelType ?? null,
    quantization,
    overrides: compiler.parseOverrides ? compiler.parseOverrides(opts.overrides) : opts.overrides?.trim() || null,
    opt: compiler.parseOptFlags ? compiler.parseOptFlags(opts.opt?.trim() || undefined) : opts.opt?.trim() || null,
    target_fingerprint: target.fingerprint,
    system_lib_prefix: opts.systemLibPrefix ?? null,
    compiler_version: compiler.COMPILER_VERSION,
    artifact_format_version: compiler.ARTIFACT_FORMAT_VERSION,
  };
  const key = cacheKey(inputs);
  const keyMs = performance.now() - t;
  emit({ stage: "load", status: "start", key, message: `library ${key}: checking the cache` });

  t = performance.now();
  const entry = await ensureEntry({
    root: opts.cacheRoot,
    kind: "lib",
    key,
    // Recorded with the entry (not part of the key): what the target was, for `cache ls`.
    inputs: { ...inputs, target: `${target.backend} ${target.description}` },
    policy,
    formatVersion: compiler.ARTIFACT_FORMAT_VERSION,
    requestedAt,
    lockTimeoutMs: opts.lockTimeoutMs,
    onEvent: relay(emit, "compile", key),
    build: async (out) => {
      await compiler.compile({
        config: opts.model,
        quantization,
        modelType: opts.modelType,
        target,
        opt: opts.opt,
        systemLibPrefix: opts.systemLibPrefix,
        output: out,
        overrides: opts.overrides,
        debugDump: opts.debugDump,
      });
    },
    pin: async (out) => {
      const manifest = join(out, "manifest.json");
      if (!(await exists(manifest))) {
        throw new IntegrityError(
          out,
          ["manifest.json missing"],
          `the compiler finished without writing ${manifest}`,
        );
      }
      return { "manifest.json": (await digestFile("sha256", manifest)).hex };
    },
  });
  const libMs = performance.now() - t;

  t = performance.now();
  const libSha = entry.manifest!.files["lib.js"];
  const url = `${pathToFileURL(join(entry.dir, "lib.js")).href}?sha256=${libSha}`;
  let module: Record<string, unknown>;
  try {
    module = await import(url);
  } catch (e) {
    throw new LibraryLoadError(
      entry.dir,
      `importing ${join(entry.dir, "lib.js")} failed: ${(e as Error).message}. The entry's ` +
        `digests match its manifest, so the compiler produced a broken library: report it, and ` +
        `remove the entry with \`cache rm ${key.slice(0, 12)}\``,
      { cause: e },
    );
  }
  const metadata = JSON.parse(await Deno.readTextFile(join(entry.dir, "metadata.json")));
  const importMs = performance.now() - t;
  emit({
    stage: "load",
    status: "done",
    ms: libMs + importMs,
    key,
    message: `library ${key.slice(0, 12)} ${entry.built ? "compiled" : "from cache"}, ` +
      `verified and imported (import ${importMs.toFixed(1)} ms)`,
  });

  t = performance.now();
  let weights: ResolvedWeights | null = null;
  if (opts.weights !== false) {
    weights = await resolveWeights(compiler, { modelDir: opts.model, format, quantization }, {
      root: opts.cacheRoot,
      policy,
      lockTimeoutMs: opts.lockTimeoutMs,
      memo: opts.weightsVerify === "full"
        ? null
        : { root: opts.cacheRoot, remember: policy !== "READONLY" },
      onEvent: relay(emit, "convert", null),
      onConvertProgress: (done, total, name) =>
        emit({ stage: "convert", status: "progress", done, total, message: name }),
    });
    emit({
      stage: "load",
      status: "done",
      ms: performance.now() - t,
      message: `weights ${weights.origin} at ${weights.dir}, verified`,
    });
  }
  return {
    target,
    adapter,
    lib: {
      key,
      dir: entry.dir,
      inputs,
      metadata,
      module,
      origin: entry.built ? "compiled" : "cache",
      bytes: entry.bytes,
    },
    weights,
    timings: { detectMs, keyMs, libMs, importMs, weightsMs: performance.now() - t },
  };
}

async function pickQuantization(
  model: string,
  format: "hf" | "mlc",
  requested: string | undefined,
): Promise<string> {
  if (format === "hf") {
    if (!requested) {
      throw new TypeError(`${model} is an HF model folder: pass a quantization (e.g. q4f16_1)`);
    }
    return requested;
  }
  const cfg = JSON.parse(await Deno.readTextFile(join(model, "mlc-chat-config.json")));
  const q = cfg.quantization;
  if (typeof q !== "string") {
    throw new ConfigError(`${model}/mlc-chat-config.json has no "quantization" string`);
  }
  if (requested && requested !== q) {
    throw new ConfigError(
      `${model} holds weights quantized as ${q}, but ${requested} was requested; ` +
        `omit the quantization or convert the HF weights for ${requested}`,
    );
  }
  return q;
}

function relay(
  emit: (e: ProgressEvent) => void,
  stage: "compile" | "convert",
  key: string | null,
): (e: EntryEvent) => void {
  const k = key ?? undefined;
  return (e) => {
    switch (e.type) {
      case "build-start":
        return emit({ stage, status: "start", key: k, message: `${stage} started` });
      case "build-end":
        return emit({ stage, status: "done", key: k, ms: e.ms, message: `${stage} finished` });
      case "wait":
        return emit({
          stage,
          status: "wait",
          key: k,
          message:
            `waiting for pid ${e.owner.pid} (${e.owner.purpose}, since ${e.owner.acquiredAt})`,
        });
      case "takeover":
        return emit({
          stage,
          status: "repair",
          key: k,
          message: `took over the lock of dead process ${e.owner?.pid ?? "?"}`,
        });
      case "quarantine":
        return emit({
          stage,
          status: "repair",
          key: k,
          message: `moved a bad entry to ${e.movedTo}: ${e.problems.join("; ")}`,
        });
    }
  };
}
