import assert, { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { ApiError } from "./errors.ts";
import {
  MAX_N,
  validateChatRequest,
  validateCompletionRequest,
  validatePrewarmRequest,
} from "./validate.ts";

const ctx = { vocabSize: 1000 };
const chat = { model: "m", messages: [{ role: "user", content: "hi" }] };

function rejects400(fn: () => unknown, param: string | null): void {
  throws(fn, (e: unknown) => {
    assert(e instanceof ApiError, `expected ApiError, got ${e}`);
    assertEquals([e.status, e.type, e.param], [400, "invalid_request_error", param]);
    return true;
  });
}

Deno.test("validateChatRequest() fills OpenAI's defaults and freezes the result", () => {
  const r = validateChatRequest(chat, ctx);
  assertEquals(r.n, 1);
  assertEquals(r.stream, false);
  assertEquals(r.maxTokens, null);
  assertEquals(r.logprobs, null);
  assertEquals(r.sampling.temperature, 1);
  assertEquals(r.sampling.top_p, 1);
  assertEquals(r.sampling.top_k, 0);
  assertEquals(r.sampling.seed, undefined);
  assertEquals(r.stop, []);
  assert(Object.isFrozen(r) && Object.isFrozen(r.sampling) && Object.isFrozen(r.messages));
});

Deno.test("validateChatRequest() joins text parts and takes max_completion_tokens first", () => {
  const r = validateChatRequest({
    ...chat,
    messages: [
      { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
      { role: "assistant", content: null },
    ],
    max_tokens: 5,
    max_completion_tokens: 7,
    logprobs: true,
    top_logprobs: 3,
  }, ctx);
  assertEquals(r.messages, [{ role: "user", content: "ab" }, { role: "assistant", content: "" }]);
  assertEquals(r.maxTokens, 7);
  assertEquals(r.logprobs, 3);
});

Deno.test("validateChatRequest() names the bad parameter in a 400", () => {
  rejects400(() => validateChatRequest([], ctx), null);
  rejects400(() => validateChatRequest({ ...chat, model: 3 }, ctx), "model");
  rejects400(() => validateChatRequest({ ...chat, messages: [] }, ctx), "messages");
  rejects400(
    () => validateChatRequest({ ...chat, messages: [{ role: "user", content: 5 }] }, ctx),
    "messages[0].content",
  );
  rejects400(
    () =>
      validateChatRequest({
        ...chat,
        messages: [{ role: "user", content: [{ type: "image_url" }] }],
      }, ctx),
    "messages[0].content",
  );
  rejects400(() => validateChatRequest({ ...chat, temperature: "hot" }, ctx), "temperature");
  rejects400(() => validateChatRequest({ ...chat, temperature: 2.5 }, ctx), "temperature");
  rejects400(() => validateChatRequest({ ...chat, top_p: 0 }, ctx), "top_p");
  rejects400(() => validateChatRequest({ ...chat, n: MAX_N + 1 }, ctx), "n");
  rejects400(() => validateChatRequest({ ...chat, n: 1.5 }, ctx), "n");
  rejects400(() => validateChatRequest({ ...chat, max_tokens: 0 }, ctx), "max_tokens");
  rejects400(() => validateChatRequest({ ...chat, stop: [""] }, ctx), "stop");
  rejects400(() => validateChatRequest({ ...chat, stream: "yes" }, ctx), "stream");
  rejects400(
    () => validateChatRequest({ ...chat, stream_options: { include_usage: true } }, ctx),
    "stream_options",
  );
  rejects400(() => validateChatRequest({ ...chat, logit_bias: { "-1": 1 } }, ctx), "logit_bias");
  rejects400(() => validateChatRequest({ ...chat, logit_bias: { "5": 101 } }, ctx), "logit_bias");
  rejects400(() => validateChatRequest({ ...chat, stop_token_ids: [1000] }, ctx), "stop_token_ids");
  rejects400(
    () =>
      validateChatRequest({ ...chat, tools: [{ type: "function", function: { name: "f" } }] }, ctx),
    "tools",
  );
  rejects400(
    () => validateChatRequest({ ...chat, response_format: { type: "json_object" } }, ctx),
    "response_format",
  );
  assertEquals(
    validateChatRequest({ ...chat, tools: [], response_format: { type: "text" } }, ctx).n,
    1,
  );
});

Deno.test("validateCompletionRequest() accepts the four prompt forms and checks token ids", () => {
  const p = (prompt: unknown) => validateCompletionRequest({ model: "m", prompt }, ctx).prompts;
  assertEquals(p("hi"), ["hi"]);
  assertEquals(p(["a", "b"]), ["a", "b"]);
  assertEquals(p([1, 2]), [[1, 2]]);
  assertEquals(p([[1], [2, 3]]), [[1], [2, 3]]);
  assertEquals(validateCompletionRequest({ model: "m", prompt: "x" }, ctx).maxTokens, 16);
  rejects400(() => p([]), "prompt");
  rejects400(() => p([1, "a"]), "prompt");
  rejects400(() => p([1000]), "prompt");
  rejects400(() => p([[]]), "prompt");
  rejects400(
    () => validateCompletionRequest({ model: "m", prompt: ["a", "b", "c"], n: 6 }, ctx),
    "n",
  );
  rejects400(
    () => validateCompletionRequest({ model: "m", prompt: "x", suffix: "y" }, ctx),
    "suffix",
  );
  rejects400(
    () => validateCompletionRequest({ model: "m", prompt: "x", logprobs: 21 }, ctx),
    "logprobs",
  );
});

Deno.test("validatePrewarmRequest() turns an overrides object into MLC's override string", () => {
  assertEquals(
    validatePrewarmRequest({
      model: "m",
      overrides: { context_window_size: 4096, max_batch_size: 8 },
    }),
    {
      model: "m",
      quantization: null,
      overrides: "context_window_size=4096;max_batch_size=8",
      opt: null,
    },
  );
  rejects400(() => validatePrewarmRequest({ model: "" }), "model");
  rejects400(() => validatePrewarmRequest({ model: "m", overrides: { a: 1.5 } }), "overrides");
  rejects400(() => validatePrewarmRequest({ model: "m", opt: 2 }), "opt");
});
