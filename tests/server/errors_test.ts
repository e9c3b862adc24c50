import assert, { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import OpenAI from "openai";
import { API_KEY, startToyServer } from "./harness.ts";

const messages = [{ role: "user" as const, content: "hi" }];

Deno.test("the server's errors reach the openai client as its typed errors", async () => {
  const t = await startToyServer({ contextWindow: 32 });
  try {
    const chat = (body: Record<string, unknown>) =>
      t.client.chat.completions.create({ model: "toy-llama3", messages, ...body } as never);
    const is = (
      cls: abstract new (...a: never[]) => InstanceType<typeof OpenAI.APIError>,
      status: number,
      param?: string,
      code?: string,
    ) =>
    (e: unknown) => {
      assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
      assertEquals(e.status, status);
      if (param !== undefined) assertEquals(e.param, param);
      if (code !== undefined) assertEquals(e.code, code);
      return true;
    };
    await rejects(chat({ temperature: 3 }), is(OpenAI.BadRequestError, 400, "temperature"));
    await rejects(chat({ n: 17 }), is(OpenAI.BadRequestError, 400, "n"));
    await rejects(chat({ top_logprobs: 2 }), is(OpenAI.BadRequestError, 400, "top_logprobs"));
    await rejects(
      chat({ messages: [{ role: "wizard", content: "x" }] }),
      is(OpenAI.BadRequestError, 400),
    );
    await rejects(
      chat({ logit_bias: { "999999": 1 } }),
      is(OpenAI.BadRequestError, 400, "logit_bias"),
    );
    await rejects(
      chat({ messages: [{ role: "user", content: "word ".repeat(40) }] }),
      is(OpenAI.BadRequestError, 400, "messages", "context_length_exceeded"),
    );
    await rejects(
      chat({ max_tokens: 30 }),
      is(OpenAI.BadRequestError, 400, "max_tokens", "context_length_exceeded"),
    );
    await rejects(
      chat({ model: "gpt-9" }),
      is(OpenAI.NotFoundError, 404, "model", "model_not_found"),
    );
    const wrongKey = new OpenAI({ baseURL: `${t.baseUrl}/v1`, apiKey: "nope", maxRetries: 0 });
    await rejects(
      wrongKey.models.list(),
      is(OpenAI.AuthenticationError, 401, undefined, "invalid_api_key"),
    );
    await rejects(
      t.client.completions.create({ model: "toy-llama3", prompt: [1, 2, -5] }),
      is(OpenAI.BadRequestError, 400, "prompt"),
    );
    await rejects(
      t.client.completions.create({ model: "toy-llama3", prompt: "" }),
      is(OpenAI.BadRequestError, 400, "prompt"),
    );
    assertEquals(t.engine.records.length, 0, "no invalid request reached the engine");
  } finally {
    await t.close();
  }
});

Deno.test("the server answers bad JSON 400, oversized bodies 413, unknown routes 404, OpenAI-style", async () => {
  const t = await startToyServer({ bodyLimit: 1024 });
  try {
    const post = (path: string, body: string, key = API_KEY) =>
      fetch(`${t.baseUrl}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body,
      });
    const check = async (res: Response, status: number, type: string) => {
      assertEquals(res.status, status);
      const body = await res.json();
      assertEquals(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
      assertEquals(body.error.type, type);
    };
    await check(await post("/v1/chat/completions", "{not json"), 400, "invalid_request_error");
    await check(
      await post(
        "/v1/completions",
        JSON.stringify({ model: "toy-llama3", prompt: "x".repeat(2000) }),
      ),
      413,
      "invalid_request_error",
    );
    await check(await post("/v1/nothing", "{}"), 404, "invalid_request_error");
    await check(await post("/v1/completions", "{}", "bad"), 401, "invalid_request_error");
  } finally {
    await t.close();
  }
});

Deno.test("GET /v1/models lists the model; /health needs no key; /metrics counts requests", async () => {
  const t = await startToyServer();
  try {
    const list = await t.client.models.list();
    assertEquals(list.data.map((m) => m.id), ["toy-llama3"]);
    const health = await fetch(`${t.baseUrl}/health`);
    assertEquals(health.status, 200);
    assertEquals((await health.json()).status, "ok");
    assertEquals((await fetch(`${t.baseUrl}/metrics`)).status, 401);
    await t.client.completions.create({
      model: "toy-llama3",
      prompt: "Hi",
      max_tokens: 3,
      temperature: 0,
    });
    await rejects(t.client.completions.create({ model: "toy-llama3", prompt: "Hi", top_p: 0 }));
    const res = await fetch(`${t.baseUrl}/metrics`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    assertEquals(res.status, 200);
    const text = await res.text();
    const sample = (line: string) => {
      const m = text.split("\n").find((l) => l.startsWith(line + " "));
      assert(m, `metrics lack ${line}`);
      return Number(m.slice(line.length + 1));
    };
    assertEquals(sample('kiln_http_requests_total{endpoint="/v1/completions",status="200"}'), 1);
    assertEquals(sample('kiln_http_requests_total{endpoint="/v1/completions",status="400"}'), 1);
    assertEquals(sample('kiln_http_requests_total{endpoint="/v1/models",status="200"}'), 1);
    assertEquals(sample("kiln_generated_tokens_total"), 3);
    assertEquals(sample("kiln_time_to_first_token_seconds_count"), 1);
    assertEquals(sample("kiln_inter_token_latency_seconds_count"), 2);
    assertEquals(sample("kiln_kv_pages_total"), 64);
    assert(text.includes("# TYPE kiln_time_to_first_token_seconds histogram"));
  } finally {
    await t.close();
  }
});
