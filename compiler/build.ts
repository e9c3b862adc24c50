/**
 * Kiln's default `buildFunc`: the dispatch plan and metadata → `lib.js`, one ES module bundled
 * by esbuild-wasm. For the CPU target the bundle also carries the CPU kernel library
 * (`cpuKernel`), so the artifact runs with nothing else of the compiler.
 * @module
 */
import * as esbuild from "esbuild-wasm";
import { fileURLToPath as fromFileUrl } from "node:url";
import type { LibraryPlan } from "./codegen/plan.ts";
import type { TargetInfo } from "./codegen/contract.ts";

export interface BuildInput {
  plan: LibraryPlan;
  metadata: Record<string, unknown>;
  target: TargetInfo;
}

/** A build function returns the artifact's files (relative path → contents). */
export type BuildFunc = (input: BuildInput) => Promise<Record<string, string | Uint8Array>>;

let ready: Promise<void> | null = null;

function init(): Promise<void> {
  ready ??= esbuild.initialize({});
  return ready;
}

/** The generated entry module, before bundling. */
export function libSource(input: BuildInput): string {
  const lines = [
    `// Kiln compiled model library. Generated; do not edit.`,
    `export const metadata = ${JSON.stringify(input.metadata)};`,
    `export const target = ${JSON.stringify(input.target)};`,
    `export const plan = ${JSON.stringify(input.plan)};`,
  ];
  if (input.target.backend === "cpu") {
    const cpu = fromFileUrl(new URL("./codegen/cpu/mod.ts", import.meta.url));
    lines.push(`export { cpuKernel } from ${JSON.stringify(cpu)};`);
  }
  return lines.join("\n") + "\n";
}

export const defaultBuild: BuildFunc = async (input) => {
  await init();
  const result = await esbuild.build({
    stdin: { contents: libSource(input), loader: "ts", resolveDir: fromFileUrl(new URL(".", import.meta.url)) },
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    write: false,
    legalComments: "none",
  });
  return { "lib.js": result.outputFiles[0].text };
};
