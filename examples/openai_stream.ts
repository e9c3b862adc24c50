/**
 * Stream a chat completion from a running Kiln server with the official `openai` client.
 * Start the server first: `npx -y deno@2.9.6 task serve`; then
 * `deno run -A examples/openai_stream.ts "Tell me about kilns"`.
 */
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: `${Deno.env.get("KILN_URL") ?? "http://127.0.0.1:8000"}/v1`,
  apiKey: Deno.env.get("KILN_API_KEY") ?? "none",
});
const stream = await client.chat.completions.create({
  model: "example",
  messages: [{ role: "user", content: Deno.args[0] ?? "Hello!" }],
  max_tokens: 64,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  await Deno.stdout.write(new TextEncoder().encode(chunk.choices[0]?.delta?.content ?? ""));
  if (chunk.usage) console.log(`\n[${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} completion tokens]`);
}
