/**
 * `createEngine({ model, modelLib? })`: the engine start-up path. A given library is used only
 * when it exists and matches the model (its metadata's normalised config and quantization);
 * otherwise — or when none is given — the JIT resolves one (cache hit, or compile on a miss),
 * saying why. Weights: an MLC folder in place, or an HF folder converted once into the cache.
 * @module
 */
import { loadModelConfig } from "../compiler/mod.ts";
import { PAGE_SIZE } from "../compiler/codegen/contract.ts";
import { type CompileMetadata, kvLayerTokenBytes, memoryEstimate } from "../compiler/metadata.ts";
import { type JitPolicy, type ProgressEvent, resolve } from "../jit/mod.ts";
import type { Device } from "./device.ts";
import { createCpuDevice } from "./devices/cpu.ts";
import { createWebGpuDevice } from "./devices/webgpu.ts";
import { type EngineConfig, KilnEngine } from "./engine.ts";
import { Model } from "./model.ts";
import { type Library, libraryFromModule, loadLibrary } from "./library.ts";
import { loadTokenizer } from "./tokenizer.ts";
import { loadChatTemplate } from "./chat_template.ts";
import { basename, resolve as resolvePath } from "node:path";

export interface CreateEngineOptions {
  /** Model folder: Hugging Face or MLC format. */
  model: string;
  /** A compiled library folder to use if it matches the model. */
  modelLib?: string;
  quantization?: string;
  /** "auto" (default), "webgpu", "cpu". */
  target?: string;
  opt?: string;
  overrides?: string;
  cacheRoot: string;
  policy?: JitPolicy;
  /** The served model's name (default: the folder's name). */
  modelId?: string;
  engine?: EngineConfig;
  /**
   * KV-cache budget: `maxTotalSequenceLength` tokens over all sequences (MLC's knob), else
   * `gpuMemoryUtilization` × `deviceMemoryBytes` less the weights and temporary buffers, else
   * 4 GiB on WebGPU (which cannot report its memory) and 1 GiB on the CPU; always capped by the
   * binding limit of one layer's buffer.
   */
  maxTotalSequenceLength?: number;
  deviceMemoryBytes?: number;
  gpuMemoryUtilization?: number;
  onProgress?: (e: ProgressEvent) => void;
  /** One-line notices (why a given library was not used, no adapter → CPU). */
  notify?: (message: string) => void;
}

/** Why `lib` cannot serve `model` (null when it can). */
export async function libraryMismatch(lib: string, model: string, quantization?: string, overrides?: string): Promise<string | null> {
  let metadata: CompileMetadata;
  try {
    metadata = JSON.parse(await Deno.readTextFile(`${lib}/metadata.json`));
    await Deno.stat(`${lib}/lib.js`);
  } catch (e) {
    return `the library ${lib} is missing or unreadable (${(e as Error).message})`;
  }
  if (quantization && metadata.quantization !== quantization) {
    return `the library ${lib} is ${metadata.quantization}, not ${quantization}`;
  }
  const { normalized } = await loadModelConfig(model, overrides);
  const a = JSON.stringify(metadata.model_config), b = JSON.stringify(normalized);
  if (a !== b) {
    const diff = Object.keys(normalized).filter((k) => JSON.stringify((metadata.model_config as unknown as Record<string, unknown>)[k]) !== JSON.stringify(normalized[k]));
    return `the library ${lib} was compiled for another model config (differs in ${diff.join(", ") || "fields"})`;
  }
  return null;
}

/** KV-cache pages for a budget, within the binding limit of one layer's buffer. */
export function kvPages(md: CompileMetadata, budgetBytes: number, bindingLimit: number, maxSeqs: number): number {
  const k = md.kv_cache;
  const perLayerPage = PAGE_SIZE * kvLayerTokenBytes(md);
  const perContext = md.kv_pages_per_sequence;
  return Math.max(
    1,
    Math.min(perContext * maxSeqs, Math.floor(budgetBytes / (perLayerPage * k.layers)), Math.floor(bindingLimit / perLayerPage)),
  );
}

export async function createEngine(opts: CreateEngineOptions): Promise<KilnEngine> {
  const notify = opts.notify ?? ((m: string) => console.error(m));
  let libDir: string | null = null;
  let lib: Library | null = null;
  let weightsDir = opts.model;
  let device: Device | null = null;
  if (opts.modelLib) {
    const why = await libraryMismatch(opts.modelLib, opts.model, opts.quantization, opts.overrides);
    if (why) notify(`${why}: compiling through the JIT instead`);
    else libDir = opts.modelLib;
  }
  if (!libDir) {
    const r = await resolve({
      model: opts.model,
      quantization: opts.quantization,
      target: opts.target,
      opt: opts.opt,
      overrides: opts.overrides,
      cacheRoot: opts.cacheRoot,
      policy: opts.policy,
      onProgress: opts.onProgress,
      notify,
    });
    libDir = r.lib.dir;
    lib = libraryFromModule(r.lib.dir, r.lib.module); // verified and imported by the JIT
    weightsDir = r.weights!.dir;
    if (r.target.backend === "webgpu") device = await createWebGpuDevice(r.adapter ? { adapter: r.adapter } : {});
  }
  lib ??= await loadLibrary(libDir);
  const md: CompileMetadata = lib.metadata;
  if (!device) device = md.target.backend === "webgpu" ? await createWebGpuDevice() : createCpuDevice();
  if (!device) throw new Error(`the library ${libDir} targets WebGPU but no adapter is available; use --target cpu`);
  const maxSeqs = Math.min(opts.engine?.maxNumSequence ?? md.max_batch_size, md.max_batch_size);
  const binding = "target" in device ? (device as { target: { limits: { maxStorageBufferBindingSize: number } } }).target.limits.maxStorageBufferBindingSize : 2 ** 31 - 1;
  const est = memoryEstimate(md);
  const bytesPerToken = est.kvPerToken;
  const budget = opts.maxTotalSequenceLength
    ? opts.maxTotalSequenceLength * bytesPerToken
    : opts.deviceMemoryBytes
    ? Math.max(bytesPerToken * PAGE_SIZE, (opts.gpuMemoryUtilization ?? 0.85) * opts.deviceMemoryBytes - est.params - est.temp)
    : device.backend === "webgpu" ? 4 * 2 ** 30 : 2 ** 30;
  const model = await Model.load({ lib, weights: weightsDir, device, numPages: kvPages(md, budget, binding, maxSeqs) });
  const [tokenizer, chatTemplate] = await Promise.all([loadTokenizer(opts.model), loadChatTemplate(opts.model)]);
  return new KilnEngine(model, tokenizer, chatTemplate, opts.modelId ?? basename(resolvePath(opts.model)), { ...opts.engine, maxNumSequence: maxSeqs });
}
