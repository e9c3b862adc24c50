/**
 * The engine: runs compiled libraries. `createEngine()` (JIT-resolved), `KilnEngine`
 * (continuous batching, device-side sampling), `Model` (library + weights + KV pages), the
 * devices, and the text layer (tokenizer, chat template, incremental detokenizer, stops).
 * @module
 */
export { createEngine, kvPages, libraryMismatch } from "./create.ts";
export type { CreateEngineOptions } from "./create.ts";
export { KilnEngine } from "./engine.ts";
export type { EngineConfig } from "./engine.ts";
export { Model } from "./model.ts";
export type { LoadOptions, SeqChunk } from "./model.ts";
export { ModelRuntime } from "./runtime.ts";
export { loadLibrary } from "./library.ts";
export type { Library } from "./library.ts";
export { openWeights } from "./weights.ts";
export type { WeightSource } from "./weights.ts";
export { KvCacheFullError, PagedKvCache } from "./kv_cache.ts";
export { createCpuDevice } from "./devices/cpu.ts";
export { createWebGpuDevice } from "./devices/webgpu.ts";
export type { Device, DeviceBuffer, DeviceKernel } from "./device.ts";
export { loadTokenizer } from "./tokenizer.ts";
export { loadChatTemplate } from "./chat_template.ts";
export { IncrementalDetokenizer } from "./detokenizer.ts";
export { StopMatcher } from "./stop_matcher.ts";
export type * from "./types.ts";
export { GREEDY, samplingParams } from "./sampling_params.ts";
