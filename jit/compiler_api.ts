/**
 * The part of `compiler/mod.ts` the JIT uses, as a type, so that a resolver can be handed the
 * real compiler (the default) or another module with the same surface.
 * @module
 */
import type { TargetInfo } from "../compiler/codegen/contract.ts";

export interface CompileRequest {
  config: string | Record<string, unknown>;
  quantization: string;
  modelType?: string;
  target: TargetInfo;
  opt?: string;
  systemLibPrefix?: string;
  /** Artifact folder to create: manifest.json, metadata.json, lib.js. */
  output: string;
  overrides?: string;
  debugDump?: string;
}

export interface CompilerModule {
  COMPILER_VERSION: string;
  ARTIFACT_FORMAT_VERSION: number;
  compile(opts: CompileRequest): Promise<{ output: string }>;
  /** The normalised config of a model folder after `overrides` ("k=v;…"). */
  loadModelConfig(
    modelDir: string,
    overrides?: string,
  ): Promise<{ normalized: Record<string, unknown>; format: "hf" | "mlc" }>;
  /** Canonical forms of the option strings (so "O2" and no flag, or reordered overrides, key
   * alike). Optional: without them the strings enter the key as given. */
  parseOptFlags?(opt: string | undefined): unknown;
  parseOverrides?(overrides: string | undefined): unknown;
  convertWeights(opts: {
    model: string;
    quantization: string;
    output: string;
    onProgress?: (done: number, total: number, name: string) => void;
  }): Promise<void>;
}

/** The artifact manifest the compiler writes. */
export interface ArtifactManifest {
  format_version: number;
  kiln_version: string;
  key_inputs?: Record<string, unknown>;
  /** relative path → sha256 hex */
  files: Record<string, string>;
}

/** Import the real compiler (`compiler/mod.ts`). Imported lazily, on the first resolve. */
export async function loadCompiler(): Promise<CompilerModule> {
  return conforms(await import("../compiler/mod.ts"));
}

/** Type check: the real compiler module has the surface the JIT expects. */
function conforms(m: typeof import("../compiler/mod.ts")): CompilerModule {
  return m;
}
