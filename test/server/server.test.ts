// The OpenAI-compatible server on a loopback port, driven by the official `openai` package and by
// raw HTTP for what a well-behaved client never sends.
import { request as httpRequest, ServerResponse, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { modelPath } from "../helpers.js";

const STORIES = () => modelPath("stories260K.gguf");
const KEY = "test-key";
// Token 2 is stories260K's end of story: banning it makes a generation run to max_tokens.
const NO_EOS = { "2": -100 };

interface RawResponse {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** One HTTP request; `body` is sent as is (a string) or chunked (an array of strings). */
function raw(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string | number>; body?: string | string[] } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, base), { method, headers: options.headers, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    // The server may close the connection before reading all of an oversized body.
    req.on("error", (err) => ((err as NodeJS.ErrnoException).code === "EPIPE" || (err as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(err)));
    for (const part of Array.isArray(options.body) ? options.body : options.body === undefined ? [] : [options.body]) req.write(part);
    req.end();
  });
}

/** The data lines of a server-sent event stream. */
function events(body: string): string[] {
  return body
    .split("\n\n")
    .filter((block) => block.startsWith("data: "))
    .map((block) => block.slice("data: ".length));
}

/** A streaming request whose response has started; `body` collects the events and `ended` settles at its end. */
interface OpenStream {
  res: IncomingMessage;
  body: string;
  ended: Promise<void>;
  /** Resolves once the first event has arrived. */
  firstEvent: Promise<void>;
}

function openStream(base: string, path: string, body: unknown): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const headers = { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" };
    const req = httpRequest(new URL(path, base), { method: "POST", headers, agent: false }, (res) => {
      res.setEncoding("utf8");
      const stream: OpenStream = {
        res,
        body: "",
        ended: new Promise((done) => res.on("close", done)),
        firstEvent: new Promise((first) => res.once("data", first)),
      };
      res.on("data", (chunk: string) => (stream.body += chunk));
      resolve(stream);
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("the OpenAI API with --parallel 4", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let client: OpenAI;
  let base: string;

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel: 4 });
    server = await startServer({ llama, port: 0, apiKey: KEY, maxBodyBytes: 16 * 1024, maxTokensCap: 128 });
    base = server.url.replace(/\/v1$/, "");
    client = new OpenAI({ apiKey: KEY, baseURL: server.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("binds loopback only, on the port the OS chose", () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(server.port).toBeGreaterThan(0);
  });

  it("completions: OpenAI's object, the same text as the library, the model's id", async () => {
    const res = await client.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 10, temperature: 0 });
    const direct = await llama.createCompletion("Once upon a time", { maxTokens: 10, temperature: 0 });
    expect(res.object).toBe("text_completion");
    expect(res.id).toMatch(/^cmpl-/);
    expect(res.model).toBe("stories260K");
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]!.text).toBe(direct.choices[0]!.text);
    expect(res.choices[0]!.text).toBe(", there was a little girl named Lily");
    expect(res.choices[0]!.finish_reason).toBe("length");
    expect(res.usage).toEqual({ prompt_tokens: 5, completion_tokens: 10, total_tokens: 15 });
  });

  it("completions map stop, echo, logprobs, seed and token prompts", async () => {
    const stopped = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 10, temperature: 0, stop: [" girl"] });
    expect(stopped.choices[0]!.text).toBe(", there was a little");
    expect(stopped.choices[0]!.finish_reason).toBe("stop");

    const echoed = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 3, temperature: 0, echo: true, logprobs: 2 });
    expect(echoed.choices[0]!.text).toBe("Once upon a time, there was");
    const logprobs = echoed.choices[0]!.logprobs!;
    expect(logprobs.tokens).toEqual([",", " there", " was"]);
    expect(logprobs.top_logprobs!.every((top) => Object.keys(top).length === 2)).toBe(true);

    const seeded = { model: "m", prompt: "Lily", max_tokens: 20, temperature: 1, seed: 7 };
    const [a, b] = await Promise.all([client.completions.create(seeded), client.completions.create(seeded)]);
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);

    const tokens = await client.completions.create({ model: "m", prompt: llama.tokenize("Once upon a time"), max_tokens: 10, temperature: 0 });
    expect(tokens.choices[0]!.text).toBe(", there was a little girl named Lily");
  });

  it("streamed completions are server-sent events that add up to the whole completion", async () => {
    const stream = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 24, temperature: 0, stream: true });
    const chunks: OpenAI.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const whole = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 24, temperature: 0 });
    expect(chunks.length).toBeGreaterThan(5);
    expect(chunks.every((c) => c.object === "text_completion" && c.id === chunks[0]!.id && c.model === "stories260K")).toBe(true);
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(whole.choices[0]!.text);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");

    const wire = await raw(base, "POST", "/v1/completions", {
      headers: { Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ prompt: "Once", max_tokens: 3, stream: true }),
    });
    expect(wire.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(events(wire.body).at(-1)).toBe("[DONE]");
  });

  it("chat completions use the chat template and match the library; streamed too", async () => {
    const messages = [
      { role: "system" as const, content: "You tell stories." },
      { role: "user" as const, content: "Tell me about Lily." },
    ];
    const res = await client.chat.completions.create({ model: "m", messages, max_tokens: 12, temperature: 0 });
    const direct = await llama.createChatCompletion({ messages, maxTokens: 12, temperature: 0 });
    expect(res.object).toBe("chat.completion");
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.choices[0]!.message.role).toBe("assistant");
    expect(res.choices[0]!.message.content).toBe(direct.choices[0]!.message.content);
    expect(res.usage!.prompt_tokens).toBe(direct.usage.prompt_tokens);

    const stream = await client.chat.completions.create({ model: "m", messages, max_tokens: 12, temperature: 0, stream: true });
    let content = "";
    let finish: string | null = null;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      content += chunk.choices[0]!.delta.content ?? "";
      finish = chunk.choices[0]!.finish_reason ?? finish;
    }
    expect(content).toBe(res.choices[0]!.message.content);
    expect(finish).toBe(res.choices[0]!.finish_reason);
  });

  it("chat takes content parts and max_completion_tokens", async () => {
    const res = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: [{ type: "text", text: "Hello" }, { type: "text", text: " there" }] }],
      max_completion_tokens: 4,
      temperature: 0,
    });
    const direct = await llama.createChatCompletion({ messages: [{ role: "user", content: "Hello there" }], maxTokens: 4, temperature: 0 });
    expect(res.choices[0]!.message.content).toBe(direct.choices[0]!.message.content);
    expect(res.usage!.completion_tokens).toBeLessThanOrEqual(4);
  });

  it("embeddings: the library's vectors, as floats or as the SDK's default base64", async () => {
    const expected = await llama.embed(["Once upon a time", "Lily"]);
    const viaBase64 = await client.embeddings.create({ model: "m", input: ["Once upon a time", "Lily"] });
    const viaFloats = await client.embeddings.create({ model: "m", input: "Lily", encoding_format: "float" });
    expect(viaBase64.object).toBe("list");
    expect(viaBase64.model).toBe("stories260K");
    expect(viaBase64.data.map((d) => d.index)).toEqual([0, 1]);
    expect(viaBase64.data[0]!.embedding).toEqual(Array.from(expected[0]!));
    expect(viaBase64.data[1]!.embedding).toEqual(Array.from(expected[1]!));
    expect(viaFloats.data[0]!.embedding).toEqual(Array.from(expected[1]!));
    expect(viaBase64.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it("lists the model and retrieves it by id", async () => {
    const models = [];
    for await (const model of client.models.list()) models.push(model);
    expect(models).toEqual([
      { id: "stories260K", object: "model", created: expect.any(Number), owned_by: "llama-napi", input_modalities: ["text"], output_modalities: ["text"] },
    ]);
    expect((await client.models.retrieve("stories260K")).id).toBe("stories260K");
    await expect(client.models.retrieve("gpt-4")).rejects.toMatchObject({ status: 404, code: "model_not_found" });
  });

  it("bad requests are 400s with OpenAI's error object, naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ n: 2 }, "n", "unsupported"],
      [{ max_tokens: 129 }, "max_tokens", "invalid_value"],
      [{ temperature: "hot" }, "temperature", "invalid_value"],
      [{ top_p: 1.5 }, "top_p", "invalid_value"],
      [{ logit_bias: { "99999": 1 } }, "logit_bias", "invalid_value"],
      [{ stop: [1] }, "stop", "invalid_value"],
      [{ seed: 2 ** 40 }, "seed", "invalid_value"],
      [{ response_format: { type: "xml" } }, "response_format", "invalid_value"],
    ];
    for (const [fields, param, code] of cases) {
      const error = await client.completions.create({ model: "m", prompt: "Once", ...fields } as never).then(
        () => null,
        (err: unknown) => err,
      );
      expect(error, JSON.stringify(fields)).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error).toMatchObject({ status: 400, param, code, type: "invalid_request_error" });
    }
    const long = "Once upon a time ".repeat(100);
    await expect(client.completions.create({ model: "m", prompt: long })).rejects.toMatchObject({ status: 400, code: "context_length_exceeded" });
    await expect(client.chat.completions.create({ model: "m", messages: [] })).rejects.toMatchObject({ status: 400, param: "messages" });
    await expect(
      client.chat.completions.create({
        model: "m",
        messages: [{ role: "user", content: "hi" }],
        tools: [{ type: "function", function: { name: "f", parameters: [] as unknown as Record<string, unknown> } }],
      }),
    ).rejects.toMatchObject({ status: 400, message: expect.stringContaining("parameters") });
    await expect(client.embeddings.create({ model: "m", input: [[1, 2, 3]] })).rejects.toMatchObject({ status: 400, param: "input" });
  });

  it("a wrong or missing API key is a 401; /health needs none", async () => {
    const wrong = new OpenAI({ apiKey: "wrong", baseURL: server.url, maxRetries: 0 });
    await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(wrong.completions.create({ model: "m", prompt: "x" })).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });

    const missing = await raw(base, "POST", "/v1/completions", { body: JSON.stringify({ prompt: "x" }) });
    expect(missing.status).toBe(401);
    expect(missing.headers["www-authenticate"]).toBe("Bearer");
    expect(JSON.parse(missing.body)).toEqual({
      error: { message: expect.stringMatching(/API key/), type: "authentication_error", param: null, code: "invalid_api_key" },
    });
    const prefix = await raw(base, "GET", "/v1/models", { headers: { Authorization: `Bearer ${KEY}x` } });
    expect(prefix.status).toBe(401);

    const health = await raw(base, "GET", "/health");
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: "ok", parallel: 4 });
  });

  it("raw HTTP: bad JSON is 400, oversized bodies 413, unknown paths 404, wrong methods 405", async () => {
    const auth = { Authorization: `Bearer ${KEY}` };
    for (const body of ["{bad", "", "[1, 2]", '"text"']) {
      const res = await raw(base, "POST", "/v1/chat/completions", { headers: auth, body });
      expect(res.status, body).toBe(400);
      expect(JSON.parse(res.body).error.type).toBe("invalid_request_error");
    }
    expect(JSON.parse((await raw(base, "POST", "/v1/completions", { headers: auth, body: "{bad" })).body).error.code).toBe("invalid_json");

    const big = JSON.stringify({ prompt: "x".repeat(64 * 1024) });
    const declared = await raw(base, "POST", "/v1/completions", { headers: auth, body: big });
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body).error.code).toBe("request_too_large");
    // Chunked, with no Content-Length to refuse up front: cut off while reading.
    const chunked = await raw(base, "POST", "/v1/completions", {
      headers: { ...auth, "Transfer-Encoding": "chunked" },
      body: Array.from({ length: 8 }, () => "x".repeat(4096)),
    });
    expect(chunked.status).toBe(413);

    expect((await raw(base, "GET", "/v1/nothing", { headers: auth })).status).toBe(404);
    const wrongMethod = await raw(base, "GET", "/v1/completions", { headers: auth });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe("POST");
    expect((await raw(base, "DELETE", "/v1/models/stories260K", { headers: auth })).status).toBe(405);
    // The server still answers after all that.
    expect((await raw(base, "GET", "/health")).status).toBe(200);
  });

  it("concurrent streams are decoded together and none is mixed with another's", async () => {
    // Batches round differently from single sequences (by ~1e-4 in a logprob), so a greedy choice
    // between near-equal tokens may flip. These prompts have none: their top two tokens are always
    // more than 0.01 apart, so each stream must be exactly its prompt's own text.
    const prompts = ["Once upon a time", "The sun was", "A cat", "Lily and Ben"];
    const options = { maxTokens: 40, temperature: 0, logitBias: { 2: -Infinity }, logprobs: 2 };
    const expected = [];
    for (const prompt of prompts) expected.push(await llama.createCompletion(prompt, options));
    for (const e of expected) {
      const gaps = e.choices[0]!.logprobs!.top_logprobs.map((top) => Math.abs(Object.values(top!)[0]! - Object.values(top!)[1]!));
      expect(Math.min(...gaps)).toBeGreaterThan(0.01);
    }
    const batchesBefore = llama.stats.batches;
    const texts = await Promise.all(
      prompts.map(async (prompt) => {
        const stream = await client.completions.create({ model: "m", prompt, max_tokens: 40, temperature: 0, logit_bias: NO_EOS, stream: true });
        let text = "";
        for await (const chunk of stream) text += chunk.choices[0]!.text;
        return text;
      }),
    );
    expect(texts).toEqual(expected.map((e) => e.choices[0]!.text));
    expect(llama.stats.maxSequencesPerBatch).toBeGreaterThanOrEqual(2);
    // 4 x 40 tokens in far fewer decode calls than one each.
    expect(llama.stats.batches - batchesBefore).toBeLessThan(120);
  });
});

describe("limits, disconnects and shutdown with --parallel 1", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let base: string;
  const long = { prompt: "Once upon a time", max_tokens: 1500, logit_bias: NO_EOS, stream: true };

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 2048, nThreads: 1, nParallel: 1 });
    server = await startServer({ llama, port: 0, apiKey: KEY, maxQueue: 1 });
    base = server.url.replace(/\/v1$/, "");
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  /** Resolves once no request is running or queued. */
  async function settled(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (server.pending > 0 || llama.active > 0 || llama.queued > 0) {
      if (Date.now() > deadline) throw new Error("the server did not settle");
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it("a client that disconnects mid-stream frees its sequence at once", async () => {
    const tokensBefore = llama.stats.tokens;
    const stream = await openStream(base, "/v1/completions", long);
    await stream.firstEvent;
    expect(stream.body).toMatch(/^data: /);
    stream.res.destroy();
    // With one sequence, this can only run once the abandoned stream has let go of it.
    const next = await raw(base, "POST", "/v1/completions", {
      headers: { Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ prompt: "Lily", max_tokens: 5, temperature: 0 }),
    });
    expect(next.status).toBe(200);
    expect(JSON.parse(next.body).usage.completion_tokens).toBe(5);
    await settled();
    // The abandoned stream stopped far short of its 1500 tokens.
    expect(llama.stats.tokens - tokensBefore).toBeLessThan(500);
  });

  it("a stream whose connection is backed up holds its generation back until the connection drains", async () => {
    // Loopback buffers take megabytes before a write reports them full; make every event stream's
    // write report it, as a slow client's would.
    let drain: (() => void) | null = null;
    const originalWrite = ServerResponse.prototype.write;
    const write = vi.spyOn(ServerResponse.prototype, "write").mockImplementation(function (this: ServerResponse, ...args: unknown[]) {
      originalWrite.apply(this, args as never);
      if (!String(args[0]).startsWith("data: ")) return true;
      drain = () => this.emit("drain");
      return false;
    });
    const tokensBefore = llama.stats.tokens;
    try {
      const stream = await openStream(base, "/v1/completions", long);
      await stream.firstEvent;
      let generated = -1;
      while (llama.stats.tokens - tokensBefore !== generated) {
        generated = llama.stats.tokens - tokensBefore;
        await new Promise((r) => setTimeout(r, 200));
      }
      write.mockRestore();
      drain!();
      await stream.ended;
      // The prompt's tokens, the token written and at most two more (waiting, in flight), not 1500.
      expect(generated).toBeLessThan(12);
      expect(events(stream.body).at(-1)).toBe("[DONE]");
      expect(JSON.parse(events(stream.body).at(-2)!).choices[0].finish_reason).toBe("length");
      expect(llama.stats.tokens - tokensBefore).toBeGreaterThanOrEqual(1500);
    } finally {
      write.mockRestore();
    }
  });

  it("a full queue answers 429 and recovers when the streams go away", async () => {
    const running = await openStream(base, "/v1/completions", long);
    const queued = await openStream(base, "/v1/completions", long);
    try {
      const rejected = await raw(base, "POST", "/v1/completions", {
        headers: { Authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ prompt: "x", max_tokens: 1 }),
      });
      expect(rejected.status).toBe(429);
      expect(JSON.parse(rejected.body).error).toMatchObject({ code: "queue_full" });
      expect(rejected.headers["retry-after"]).toBe("1");
      expect(queued.body).toBe("");
      // A waiting client that goes away gives its place in the queue back at once.
      queued.res.destroy();
      await queued.ended;
      const admitted = await openStream(base, "/v1/completions", { ...long, max_tokens: 1 });
      expect(admitted.res.statusCode).toBe(200);
      admitted.res.destroy();
    } finally {
      running.res.destroy();
      queued.res.destroy();
    }
    await settled();
    const after = await raw(base, "POST", "/v1/completions", { headers: { Authorization: `Bearer ${KEY}` }, body: JSON.stringify({ prompt: "x", max_tokens: 1 }) });
    expect(after.status).toBe(200);
  });

  it("close() stops accepting, lets a stream in flight finish, then ends one that outlasts the grace period", async () => {
    const finishing = await openStream(base, "/v1/completions", { prompt: "Once", max_tokens: 60, logit_bias: NO_EOS, stream: true });
    const closing = server.close(60_000);
    await expect(raw(base, "GET", "/health")).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await finishing.ended;
    await closing;
    expect(events(finishing.body).at(-1)).toBe("[DONE]");
    const chunks = events(finishing.body).slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.at(-1).choices[0].finish_reason).toBe("length");

    // A second server whose stream outlasts a short grace period gets an error event, not a hang.
    const second = await startServer({ llama, port: 0 });
    const cut = await openStream(second.url.replace(/\/v1$/, ""), "/v1/completions", long);
    await cut.firstEvent;
    // And a client that never finishes sending its body does not hold the shutdown up.
    const stalled = connect(second.port, "127.0.0.1");
    await new Promise((resolve) => stalled.once("connect", resolve));
    stalled.on("error", () => {});
    // The server answers "100 Continue" as it hands the request to its handler.
    stalled.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n");
    await new Promise((resolve) => stalled.once("data", resolve));
    stalled.write("{");
    const started = Date.now();
    await second.close(100);
    await cut.ended;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(JSON.parse(events(cut.body).at(-1)!)).toMatchObject({ error: { code: "shutting_down" } });
  });
});
