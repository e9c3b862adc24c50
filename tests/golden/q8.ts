/**
 * What the golden tests share about q8 activations: whether this machine's WebGPU adapter
 * gives libraries them, and the tolerance that applies where they are on.
 * @module
 */
import { PACKED_DOT } from "../../compiler/codegen/contract.ts";

/** The WebGPU adapter, or null where there is none. */
export const adapter = await navigator.gpu?.requestAdapter().catch(() => null) ?? null;

/** Whether WebGPU libraries here get q8 activations (the adapter has the packed dot product). */
export const packedDot = !!adapter &&
  !!(navigator.gpu as { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures
    ?.has(PACKED_DOT);

/** Tolerance where a library uses q8 activations (int8 x, a step of max|x| / 127 per
 * 32-element block, on top of the weights' 4-bit rounding), as a fraction of max|logit|: its
 * decode step and its prompts (prefill matmuls beyond 32 rows take them too). */
export const Q8_TOL = 4e-2;
