// The server's Prometheus metrics (GET /metrics), its 429 with Retry-After, and clients that go away:
// a real server on a loopback port over the real tiny model, scraped over HTTP and parsed here.
import { request as httpRequest, type IncomingMessage } from "node:http";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { modelPath } from "../helpers.js";
import { raw } from "./raw-http.js";

const STORIES = () => modelPath("stories260K.gguf");
const KEY = "test-key";
const AUTH = { Authorization: `Bearer ${KEY}` };
// Token 2 is stories260K's end of story: banning it makes a generation run to max_tokens.
const NO_EOS = { "2": -100 };

interface Metric {
  help: string;
  type: string;
  value: number;
}

/** The Prometheus text exposition format (version 0.0.4) of metrics without labels, checked line by line. */
function parseExposition(text: string): Map<string, Metric> {
  const metrics = new Map<string, Metric>();
  const entry = (name: string) => metrics.get(name) ?? metrics.set(name, { help: "", type: "", value: Number.NaN }).get(name)!;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (comment) {
      if (comment[1] === "HELP") entry(comment[2]!).help = comment[3]!;
      else entry(comment[2]!).type = comment[3]!;
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line);
    if (!sample) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    const value = Number(sample[2]);
    if (Number.isNaN(value) && sample[2] !== "NaN") throw new Error(`not a value: ${JSON.stringify(line)}`);
    entry(sample[1]!).value = value;
  }
  return metrics;
}


/** The server's metrics, by name without the llamacpp: prefix. */
async function scrape(base: string): Promise<Record<string, number>> {
  const res = await raw(base, "GET", "/metrics", { headers: AUTH });
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  const values: Record<string, number> = {};
  for (const [name, metric] of parseExposition(res.body)) values[name.replace(/^llamacpp:/, "")] = metric.value;
  return values;
}

/** Scrapes until `ok` holds of the metrics; fails once `boundMs` has passed. Resolves to the time it took. */
async function scrapeUntil(base: string, ok: (m: Record<string, number>) => boolean, boundMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const metrics = await scrape(base);
    if (ok(metrics)) return Date.now() - start;
    if (Date.now() - start > boundMs) throw new Error(`the metrics did not get there within ${boundMs} ms: ${JSON.stringify(metrics)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface OpenRequest {
  res: IncomingMessage | null;
  req: ReturnType<typeof httpRequest>;
  body: string;
  /** Settles when the response has started (streams: at once; others: when answered). */
  started: Promise<void>;
}

/** A POST whose response (or the lack of one) the test watches, and can cut off by destroying its socket. */
function open(base: string, path: string, body: unknown): OpenRequest {
  const open: OpenRequest = { res: null, req: null!, body: "", started: null! };
  open.started = new Promise((resolve, reject) => {
    open.req = httpRequest(new URL(path, base), { method: "POST", headers: { ...AUTH, "Content-Type": "application/json" }, agent: false }, (res) => {
      open.res = res;
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (open.body += chunk));
      resolve();
    });
    open.req.on("error", (err) => ((err as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(err)));
  });
  open.req.end(JSON.stringify(body));
  return open;
}

/** Resolves once the stream has sent `n` events; fails after 10 s. */
async function events(stream: OpenRequest, n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  await stream.started;
  while ((stream.body.match(/^data: /gm) ?? []).length < n) {
    if (Date.now() > deadline) throw new Error(`the stream sent no ${n} events in 10 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("GET /metrics with --parallel 2", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let client: OpenAI;
  let base: string;

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 1024, nThreads: 1, nParallel: 2 });
    server = await startServer({ llama, port: 0, apiKey: KEY, metrics: true });
    base = server.url.replace(/\/v1$/, "");
    client = new OpenAI({ apiKey: KEY, baseURL: server.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("llama-server's metrics, with its types and help texts, at 0 before any request", async () => {
    const res = await raw(base, "GET", "/metrics", { headers: AUTH });
    const metrics = parseExposition(res.body);
    const types = Object.fromEntries([...metrics].map(([name, m]) => [name, m.type]));
    expect(types).toEqual({
      "llamacpp:prompt_tokens_total": "counter",
      "llamacpp:prompt_tokens_cached_total": "counter",
      "llamacpp:prompt_seconds_total": "counter",
      "llamacpp:tokens_predicted_total": "counter",
      "llamacpp:tokens_predicted_seconds_total": "counter",
      "llamacpp:n_decode_total": "counter",
      "llamacpp:prompt_tokens_seconds": "gauge",
      "llamacpp:predicted_tokens_seconds": "gauge",
      "llamacpp:requests_processing": "gauge",
      "llamacpp:requests_deferred": "gauge",
      "llamacpp:kv_cache_usage_ratio": "gauge",
      "llamacpp:kv_cache_tokens": "gauge",
    });
    expect(metrics.get("llamacpp:prompt_tokens_total")!.help).toBe("Number of prompt tokens processed, excluding cached tokens");
    expect(metrics.get("llamacpp:requests_deferred")!.help).toBe("Number of requests deferred");
    expect([...metrics.values()].every((m) => m.value === 0)).toBe(true);
  });

  it("needs the API key, as every route but /health", async () => {
    expect((await raw(base, "GET", "/metrics")).status).toBe(401);
    expect((await raw(base, "GET", "/metrics", { headers: { Authorization: "Bearer wrong" } })).status).toBe(401);
  });

  it("counts the tokens the responses report, the time they took, and the KV cache they hold", async () => {
    const before = await scrape(base);
    const prompt = "Once upon a time";
    const usages: OpenAI.CompletionUsage[] = [];
    usages.push((await client.completions.create({ model: "m", prompt, max_tokens: 10, temperature: 0 })).usage!);
    // The same prompt again: all of it but its last token comes from the cache.
    usages.push((await client.completions.create({ model: "m", prompt, max_tokens: 7, temperature: 0 })).usage!);
    const chat = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Tell me about Lily." }], max_tokens: 12, temperature: 0 });
    usages.push(chat.usage!);
    const stream = await client.completions.create({ model: "m", prompt: "Lily and Ben", max_tokens: 9, stream: true, stream_options: { include_usage: true } });
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
    expect(usages).toHaveLength(4);
    const promptTokens = usages.reduce((n, u) => n + u.prompt_tokens, 0);
    const completionTokens = usages.reduce((n, u) => n + u.completion_tokens, 0);
    expect(completionTokens).toBe(10 + 7 + chat.usage!.completion_tokens + 9);

    const after = await scrape(base);
    const delta = (name: string) => after[name]! - before[name]!;
    expect(delta("tokens_predicted_total")).toBe(completionTokens);
    expect(delta("prompt_tokens_total") + delta("prompt_tokens_cached_total")).toBe(promptTokens);
    expect(delta("prompt_tokens_cached_total")).toBeGreaterThanOrEqual(usages[0]!.prompt_tokens - 1);
    // Each prompt's last token at least is decoded.
    expect(delta("prompt_tokens_total")).toBeGreaterThanOrEqual(4);
    expect(delta("prompt_seconds_total")).toBeGreaterThan(0);
    expect(delta("tokens_predicted_seconds_total")).toBeGreaterThan(0);
    // A decode call per generated token at most (the first comes with the prompt), one per prompt at least.
    expect(delta("n_decode_total")).toBeGreaterThanOrEqual(4);
    expect(delta("n_decode_total")).toBeLessThanOrEqual(delta("prompt_tokens_total") + completionTokens);
    expect(after.prompt_tokens_seconds).toBeGreaterThan(0);
    expect(after.predicted_tokens_seconds).toBeGreaterThan(0);
    expect(after.requests_processing).toBe(0);
    expect(after.requests_deferred).toBe(0);
    // The sequences keep their last prompt and generation for reuse: less the last generated token, never decoded.
    // Those are the tokens the context's KV cache holds, by position (the context is idle now).
    const held = [0, 1].map((seq) => llama.context!.positionRange(seq)).reduce((n, [first, last]) => n + (last < 0 ? 0 : last - first + 1), 0);
    expect(after.kv_cache_tokens).toBeGreaterThan(0);
    expect(after.kv_cache_tokens).toBe(held);
    expect(after.kv_cache_usage_ratio).toBeCloseTo(after.kv_cache_tokens! / (1024 * 2), 10);
    // The throughputs are over the time since the last scrape: no work since, no throughput.
    const idle = await scrape(base);
    expect(idle.prompt_tokens_seconds).toBe(0);
    expect(idle.predicted_tokens_seconds).toBe(0);
    expect(idle.tokens_predicted_total).toBe(after.tokens_predicted_total);
  });

  it("requests_processing counts the requests generating, and is back to 0 after", async () => {
    const long = { prompt: "Once upon a time", max_tokens: 1000, logit_bias: NO_EOS, stream: true };
    const streams = [open(base, "/v1/completions", long), open(base, "/v1/completions", long)];
    try {
      await Promise.all(streams.map((s) => events(s, 1)));
      const during = await scrape(base);
      expect(during.requests_processing).toBe(2);
      expect(during.requests_deferred).toBe(0);
    } finally {
      for (const s of streams) s.req.destroy();
    }
    await scrapeUntil(base, (m) => m.requests_processing === 0, 2_000);
  });
});

describe("a full queue, --metrics off, and clients that go away (--parallel 1)", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let base: string;
  // Long enough (tens of seconds) that a request not stopped by its client going away would still be running.
  const long = { prompt: "Once upon a time", max_tokens: 4000, logit_bias: NO_EOS };
  const quick = JSON.stringify({ prompt: "Lily", max_tokens: 5, temperature: 0 });

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 4096, nThreads: 1, nParallel: 1 });
    server = await startServer({ llama, port: 0, apiKey: KEY, maxQueue: 1, metrics: true });
    base = server.url.replace(/\/v1$/, "");
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("requests_deferred counts the queued request; one more is a 429 with Retry-After", async () => {
    const running = open(base, "/v1/completions", { ...long, stream: true });
    const queued = open(base, "/v1/completions", { ...long, stream: true });
    try {
      await events(running, 1);
      await queued.started;
      const full = await scrape(base);
      expect(full.requests_processing).toBe(1);
      expect(full.requests_deferred).toBe(1);
      const refused = await raw(base, "POST", "/v1/completions", { headers: AUTH, body: quick });
      expect(refused.status).toBe(429);
      expect(refused.headers["retry-after"]).toBe("1");
      expect(JSON.parse(refused.body).error).toMatchObject({ code: "queue_full", type: "rate_limit_error" });
      // The official client reads Retry-After and waits that long before its retry.
      const client = new OpenAI({ apiKey: KEY, baseURL: server.url, maxRetries: 1 });
      const started = Date.now();
      const retried = client.completions.create({ model: "m", prompt: "Lily", max_tokens: 5 });
      await new Promise((r) => setTimeout(r, 300));
      queued.req.destroy();
      running.req.destroy();
      expect((await retried).usage!.completion_tokens).toBe(5);
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    } finally {
      running.req.destroy();
      queued.req.destroy();
    }
    await scrapeUntil(base, (m) => m.requests_processing === 0 && m.requests_deferred === 0, 2_000);
  });

  /** A short completion is answered within 3 s: no abandoned request still holds the sequence. */
  async function expectServedAtOnce(): Promise<void> {
    const started = Date.now();
    const next = await raw(base, "POST", "/v1/completions", { headers: AUTH, body: quick });
    expect(next.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(3_000);
  }

  it("a stream whose client goes away frees its sequence: requests_processing is 0 and the next request runs at once", async () => {
    const before = await scrape(base);
    const stream = open(base, "/v1/completions", { ...long, stream: true });
    await events(stream, 4);
    stream.res!.socket!.destroy();
    await scrapeUntil(base, (m) => m.requests_processing === 0, 2_000);
    await expectServedAtOnce();
    const after = await scrape(base);
    // The abandoned stream's tokens count, and they are few of its 4000: it stopped as its client left.
    expect(after.tokens_predicted_total - before.tokens_predicted_total).toBeLessThan(500);
    expect(after.tokens_predicted_total - before.tokens_predicted_total).toBeGreaterThanOrEqual(3 + 5);
  });

  it("so does a request answered whole whose client goes away mid-way", async () => {
    const before = await scrape(base);
    const tokensBefore = llama.stats.tokens;
    const whole = open(base, "/v1/completions", long);
    await scrapeUntil(base, (m) => m.requests_processing === 1, 2_000);
    // Mid-generation: some tokens are out.
    while (llama.stats.tokens - tokensBefore < 20) await new Promise((r) => setTimeout(r, 5));
    whole.req.socket!.destroy();
    await scrapeUntil(base, (m) => m.requests_processing === 0, 2_000);
    expect(whole.res).toBeNull();
    await expectServedAtOnce();
    const after = await scrape(base);
    expect(after.tokens_predicted_total - before.tokens_predicted_total).toBeLessThan(500);
  });

  it("so does an embedding request: it stops before its next text", async () => {
    const text = "Once upon a time there was a little girl named Lily";
    // How long a tenth of the big request takes, answered whole.
    let started = Date.now();
    const tenth = await raw(base, "POST", "/v1/embeddings", { headers: { ...AUTH, "Content-Type": "application/json" }, body: JSON.stringify({ input: Array(300).fill(text) }) });
    expect(tenth.status).toBe(200);
    const tenthMs = Date.now() - started;
    const big = open(base, "/v1/embeddings", { input: Array(3000).fill(text) });
    await scrapeUntil(base, (m) => m.requests_processing === 1, 2_000);
    big.req.socket!.destroy();
    started = Date.now();
    const took = await scrapeUntil(base, (m) => m.requests_processing === 0, 10 * tenthMs);
    // The whole request would have taken about ten tenths.
    expect(took).toBeLessThan(Math.max(3 * tenthMs, 200));
    const next = await raw(base, "POST", "/v1/embeddings", { headers: { ...AUTH, "Content-Type": "application/json" }, body: JSON.stringify({ input: text }) });
    expect(next.status).toBe(200);
    // The stop as bounded above, then one small request: on a fast CPU tenthMs is short and the
    // fixed costs (polling, HTTP) are not, so the bound has a floor as the one above.
    expect(Date.now() - started).toBeLessThan(Math.max(5 * tenthMs, 400));
  });

  it("without --metrics, /metrics is llama-server's 501 (after the API key check)", async () => {
    const plain = await startServer({ llama, port: 0, apiKey: KEY });
    try {
      const url = plain.url.replace(/\/v1$/, "");
      const off = await raw(url, "GET", "/metrics", { headers: AUTH });
      expect(off.status).toBe(501);
      expect(JSON.parse(off.body).error).toMatchObject({ type: "not_supported_error", code: "not_supported" });
      expect((await raw(url, "GET", "/metrics")).status).toBe(401);
    } finally {
      await plain.close(0);
    }
  });
});
