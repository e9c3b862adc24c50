/**
 * A compiler with the `CompilerModule` surface for the JIT's cache tests: it writes a genuine
 * artifact (manifest with real sha256 digests, an importable lib.js that reports the inputs it
 * was built from) and a genuine MLC weight folder (shards with md5), counts every compile and
 * conversion in a file (one line per call, O_APPEND), and can be told to take a while (so
 * processes overlap, or a test can SIGKILL it midway) or to fail at a named stage.
 * The cache never looks inside what it stores, so these tests exercise it fully; the real
 * compiler is exercised end to end in real_compiler_test.ts.
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CompileError } from "../../compiler/errors.ts";
import type { CompileRequest, CompilerModule } from "../../jit/compiler_api.ts";

export interface FixtureOptions {
  /** Each compile/convert appends "compile <pid>" / "convert <pid>" here. */
  countFile: string;
  /** Sleep this long in the middle of a compile (after lib.js, before manifest.json). */
  delayMs?: number;
  /** Throw a CompileError from this stage. */
  failStage?: string;
  version?: string;
  /** Write this as lib.js instead of the working module (digests still match). */
  libSource?: string;
  /** Finish without writing manifest.json. */
  skipManifest?: boolean;
}

const sha256 = (d: string | Uint8Array) => createHash("sha256").update(d).digest("hex");
const md5 = (d: Uint8Array) => createHash("md5").update(d).digest("hex");

async function count(file: string, what: string): Promise<void> {
  await Deno.writeTextFile(file, `${what} ${Deno.pid}\n`, { append: true });
}

async function readConfig(
  dir: string,
): Promise<{ raw: Record<string, unknown>; format: "hf" | "mlc" }> {
  try {
    return {
      raw: JSON.parse(await Deno.readTextFile(join(dir, "mlc-chat-config.json"))),
      format: "mlc",
    };
  } catch {
    return { raw: JSON.parse(await Deno.readTextFile(join(dir, "config.json"))), format: "hf" };
  }
}

export function fixtureCompiler(o: FixtureOptions): CompilerModule {
  return {
    COMPILER_VERSION: o.version ?? "fixture-1",
    ARTIFACT_FORMAT_VERSION: 1,
    async loadModelConfig(dir) {
      const { raw, format } = await readConfig(dir);
      const { quantization: _q, ...normalized } = raw;
      return { normalized, format };
    },
    async compile(req: CompileRequest) {
      await count(o.countFile, "compile");
      if (o.failStage) {
        if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
        throw new CompileError(o.failStage, `fixture failure in ${o.failStage}`, {
          cause: new RangeError("hidden_size 7 is not a multiple of 4"),
        });
      }
      const cfg = typeof req.config === "string" ? (await readConfig(req.config)).raw : req.config;
      const info = {
        quantization: req.quantization,
        backend: req.target.backend,
        opt: req.opt ?? null,
        hidden: cfg.hidden_size ?? null,
      };
      const lib = o.libSource ??
        `export const info = ${
          JSON.stringify(info)
        };\nexport function hello() { return "kiln-fixture"; }\n`;
      const metadata = JSON.stringify({
        model_type: cfg.model_type ?? "llama",
        quantization: req.quantization,
      });
      await Deno.mkdir(req.output, { recursive: true });
      await Deno.writeTextFile(join(req.output, "lib.js"), lib);
      await Deno.writeTextFile(join(req.output, "metadata.json"), metadata);
      if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      const manifest = {
        format_version: 1,
        kiln_version: o.version ?? "fixture-1",
        files: { "lib.js": sha256(lib), "metadata.json": sha256(metadata) },
      };
      if (!o.skipManifest) {
        await Deno.writeTextFile(join(req.output, "manifest.json"), JSON.stringify(manifest));
      }
      return { metadata: JSON.parse(metadata), output: req.output };
    },
    async convertWeights({ model, quantization, output }) {
      await count(o.countFile, "convert");
      if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      const { raw } = await readConfig(model);
      await Deno.mkdir(output, { recursive: true });
      const shard = await Deno.readFile(join(model, "model.safetensors"));
      await Deno.writeFile(join(output, "params_shard_0.bin"), shard);
      const index = {
        metadata: { ParamSize: 1, ParamBytes: shard.length },
        records: [{
          dataPath: "params_shard_0.bin",
          format: "raw-shard",
          nbytes: shard.length,
          records: [{
            name: "blob",
            shape: [shard.length],
            dtype: "uint8",
            format: "raw",
            nbytes: shard.length,
            byteOffset: 0,
          }],
          md5sum: md5(shard),
        }],
      };
      await Deno.writeTextFile(join(output, "tensor-cache.json"), JSON.stringify(index));
      await Deno.writeTextFile(
        join(output, "mlc-chat-config.json"),
        JSON.stringify({ ...raw, quantization }),
      );
    },
  };
}

/** A tiny HF-format model folder: config.json and a model.safetensors of `bytes` bytes. */
export async function makeHfModel(
  dir: string,
  config: Record<string, unknown> = {},
  bytes = 4096,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify({
      model_type: "llama",
      hidden_size: 64,
      num_hidden_layers: 2,
      vocab_size: 256,
      ...config,
    }),
  );
  const blob = new Uint8Array(bytes).map((_, i) => (i * 31 + 7) & 255);
  await Deno.writeFile(join(dir, "model.safetensors"), blob);
  return dir;
}

/** Lines of the count file ("compile <pid>", "convert <pid>"). */
export async function counted(file: string, what: "compile" | "convert"): Promise<number> {
  try {
    return (await Deno.readTextFile(file)).split("\n").filter((l) => l.startsWith(what)).length;
  } catch {
    return 0;
  }
}
