/**
 * Kiln's default `buildFunc`: the dispatch plan and metadata → `lib.js`, one ES module bundled
 * by esbuild-wasm. For the CPU target the bundle also carries the CPU kernel library
 * (`cpuKernel`), so the artifact runs with nothing else of the compiler.
 * @module
 */
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

let ready: Promise<typeof import("esbuild-wasm")> | null = null;

/** Start esbuild-wasm (its wasm compile takes a few hundred ms): call early to overlap it. */
export function init(): Promise<typeof import("esbuild-wasm")> {
  // imported on first use: loading the compiler (the JIT's warm path does) stays cheap
  ready ??= import("esbuild-wasm").then(async (esbuild) => {
    await esbuild.initialize({});
    return esbuild;
  });
  return ready;
}

const DATA = "__KILN_LIBRARY_DATA__";

/** The generated entry module, before bundling: code, with the data as a placeholder. */
export function libSource(input: BuildInput): string {
  const lines = [
    `// Kiln compiled model library. Generated; do not edit.`,
    `const data = ${DATA};`,
    `export const metadata = data.metadata;`,
    `export const target = data.target;`,
    `export const plan = data.plan;`,
  ];
  if (input.target.backend === "cpu") {
    const cpu = fromFileUrl(new URL("./codegen/cpu/mod.ts", import.meta.url));
    lines.push(`export { cpuKernel } from ${JSON.stringify(cpu)};`);
  }
  return lines.join("\n") + "\n";
}

/**
 * esbuild bundles the code; the data (plan with WGSL sources, metadata: megabytes of JSON for a
 * large model, which esbuild-wasm would take seconds to parse) is spliced in afterwards as one
 * JSON literal, which is a valid JS expression.
 */
export const defaultBuild: BuildFunc = async (input) => {
  const esbuild = await init();
  const result = await esbuild.build({
    stdin: {
      contents: libSource(input),
      loader: "ts",
      resolveDir: fromFileUrl(new URL(".", import.meta.url)),
    },
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    write: false,
    legalComments: "none",
    define: { [DATA]: DATA },
  });
  const code = result.outputFiles[0].text;
  const at = code.indexOf(DATA);
  if (at < 0 || code.indexOf(DATA, at + 1) >= 0) {
    throw new Error("bundle lost the library data placeholder");
  }
  const data = JSON.stringify({ metadata: input.metadata, target: input.target, plan: input.plan });
  return { "lib.js": code.slice(0, at) + data + code.slice(at + DATA.length) };
};
