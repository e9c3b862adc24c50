/**
 * Weights for a model folder. An MLC-format folder is used where it is, after checking every
 * shard (size and md5). An HF folder is converted once per quantization into the cache, under
 * `weights/<key>/` with key = sha256(source files' digests, quantization, compiler version).
 * @module
 */
import { join, relative } from "node:path";
import { WeightError } from "../compiler/errors.ts";
import { cacheKey, type WeightsKeyInputs } from "./cache_key.ts";
import type { CompilerModule } from "./compiler_api.ts";
import { digestFile } from "./digest.ts";
import { ensureEntry, type EntryEvent } from "./ensure_entry.ts";
import type { DigestMemo } from "./digest_memo.ts";
import { checkMlcWeights } from "./mlc_weights.ts";
import type { JitPolicy } from "./options.ts";
import { sourceDigests } from "./source_digests.ts";

export interface ResolvedWeights {
  /** The MLC-format folder to load. */
  dir: string;
  /** in-place: the model folder itself; cache: converted earlier; converted: just now. */
  origin: "in-place" | "cache" | "converted";
  /** The weights key (HF sources only). */
  key: string | null;
  bytes: number;
}

export interface WeightsContext {
  root: string;
  policy: JitPolicy;
  lockTimeoutMs?: number;
  onEvent?: (e: EntryEvent) => void;
  onConvertProgress?: (done: number, total: number, name: string) => void;
  /** Reuse digests of unchanged files (null: re-hash every shard and source file). */
  memo: DigestMemo | null;
}

/** Find (or convert) the weights of `modelDir` in the given format for `quantization`. */
export async function resolveWeights(
  compiler: CompilerModule,
  req: { modelDir: string; format: "hf" | "mlc"; quantization: string },
  ctx: WeightsContext,
): Promise<ResolvedWeights> {
  if (req.format === "mlc") {
    const check = await checkMlcWeights(req.modelDir, { memo: ctx.memo });
    if (check.problems.length) {
      throw new WeightError(
        `the MLC weight folder ${req.modelDir} is damaged: ${check.problems.join("; ")}. ` +
          `Re-download or re-convert these weights`,
      );
    }
    return { dir: req.modelDir, origin: "in-place", key: null, bytes: check.bytes };
  }
  const inputs: WeightsKeyInputs = {
    kind: "weights",
    sources: await sourceDigests(req.modelDir, ctx.memo),
    quantization: req.quantization,
    compiler_version: compiler.COMPILER_VERSION,
  };
  const key = cacheKey(inputs);
  const entry = await ensureEntry({
    root: ctx.root,
    kind: "weights",
    key,
    inputs: { ...inputs, source_dir: req.modelDir },
    policy: ctx.policy,
    lockTimeoutMs: ctx.lockTimeoutMs,
    onEvent: ctx.onEvent,
    digestMemo: ctx.memo,
    build: (out) =>
      compiler.convertWeights({
        model: req.modelDir,
        quantization: req.quantization,
        output: out,
        onProgress: ctx.onConvertProgress,
      }),
    pin: pinAll,
  });
  return { dir: entry.dir, origin: entry.built ? "converted" : "cache", key, bytes: entry.bytes };
}

/** sha256 of every file under `dir`, by path relative to it. */
export async function pinAll(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) out[relative(dir, p)] = (await digestFile("sha256", p)).hex;
    }
  };
  await walk(dir);
  return out;
}
