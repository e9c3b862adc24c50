/**
 * `loadChatTemplate()`: the chat template of a model folder (`chat_template.jinja`, else
 * `tokenizer_config.json`'s `chat_template`), rendered with `@huggingface/jinja`.
 * @module
 */
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { ConfigError } from "../compiler/errors.ts";
import type { ChatMessage, ChatTemplate } from "./types.ts";

/**
 * Load the chat template of `modelDir`, or null when the folder has none. `chat_template.jinja`
 * wins over `tokenizer_config.json`; there `chat_template` is a string or a list of
 * `{name, template}` records (the one named "default" is used). Rendering passes `messages`,
 * `bos_token`, `eos_token` and `add_generation_prompt`. A failure while rendering (the template's
 * `raise_exception(msg)`, a missing field) throws a TypeError: the messages did not suit it.
 *
 * @example
 * ```ts
 * const t = await loadChatTemplate("examples/models/tiny-llama");
 * t?.render([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * ```
 */
export async function loadChatTemplate(modelDir: string): Promise<ChatTemplate | null> {
  const cfgPath = join(modelDir, "tokenizer_config.json");
  const cfgText = await readOptional(cfgPath);
  let cfg: Record<string, unknown> = {};
  if (cfgText !== null) {
    try {
      cfg = JSON.parse(cfgText);
    } catch (e) {
      throw new ConfigError(`${cfgPath} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  const jinjaPath = join(modelDir, "chat_template.jinja");
  const fileSource = await readOptional(jinjaPath);
  const source = fileSource ?? pickTemplate(cfg.chat_template, cfgPath);
  if (source === null) return null;
  let template: Template;
  try {
    template = new Template(source);
  } catch (e) {
    throw new ConfigError(
      `the chat template in ${fileSource !== null ? jinjaPath : cfgPath} does not parse ` +
        `(${(e as Error).message}); fix the template or remove it`,
      { cause: e },
    );
  }
  const bos = tokenContent(cfg.bos_token);
  const eos = tokenContent(cfg.eos_token);
  return Object.freeze({
    render(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string {
      try {
        return template.render({
          messages: messages.map((m) => ({ ...m })),
          bos_token: bos,
          eos_token: eos,
          add_generation_prompt: opts?.addGenerationPrompt ?? true,
        });
      } catch (e) {
        throw new TypeError(
          `the chat template rejected the messages: ${(e as Error).message}`,
          { cause: e },
        );
      }
    },
  });
}

function pickTemplate(value: unknown, where: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.filter((v) =>
      v && typeof v === "object" && typeof v.name === "string" && typeof v.template === "string"
    ) as { name: string; template: string }[];
    const chosen = named.find((v) => v.name === "default");
    if (chosen) return chosen.template;
    throw new ConfigError(
      `${where} lists chat templates named [${named.map((v) => v.name).join(", ")}] but none ` +
        `named "default"; add a "default" entry`,
    );
  }
  throw new ConfigError(`${where}: chat_template must be a string or a list of {name, template}`);
}

function tokenContent(v: unknown): string {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
    return (v as { content: string }).content;
  }
  return "";
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}
