// POST /v1/rerank (and /rerank, /reranking) on `llama-napi serve`, against llama-server built from
// the vendored llama.cpp and run here on the same synthetic Qwen3 reranker: the same answer, in
// its Jina-style and TEI forms; bad bodies; a model that cannot rerank; a round of the server fuzz.
// Both run with flash attention off (see test/completion/rerank.test.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, type RerankResult } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { fuzzServer } from "../../scripts/fuzz-server.mjs";
import { RERANK_DOCUMENTS as DOCUMENTS, RERANK_QUERY as QUERY, rerankerModel } from "../fixtures.js";
import { modelPath } from "../helpers.js";
import { startLlamaServer, type LlamaServer } from "../llama-server.js";
import { json, raw } from "./raw-http.js";

const N_CTX = 1024;
const KEY = "test-key";
const AUTH = { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" };

function expectSameResults(mine: unknown, reference: unknown, score: "relevance_score" | "score"): void {
  const a = mine as Array<RerankResult & { score?: number; text?: string }>;
  const b = reference as typeof a;
  expect(a.map((r) => r.index)).toEqual(b.map((r) => r.index));
  a.forEach((r, i) => {
    expect(Object.keys(r)).toEqual(Object.keys(b[i]!));
    expect(Math.abs(r[score]! - b[i]![score]!)).toBeLessThan(1e-4);
    expect(r.text).toBe(b[i]!.text);
  });
}

describe("reranking routes on a Qwen3 reranker", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let reference: LlamaServer;
  let base: string;
  const post = (path: string, body: unknown) => raw(base, "POST", path, { headers: AUTH, body });

  beforeAll(async () => {
    const path = await rerankerModel("template");
    llama = await Llama.load({ modelPath: path, nCtx: N_CTX, nThreads: 2, flashAttn: false });
    server = await startServer({ llama, port: 0, apiKey: KEY, maxTokensCap: 8 });
    base = server.url.replace(/\/v1$/, "");
    reference = await startLlamaServer(path, ["--reranking", "-fa", "off", "-c", String(4 * N_CTX), "-b", String(N_CTX), "-ub", String(N_CTX)]);
  });
  afterAll(async () => {
    await reference?.stop();
    await server?.close(0);
    await llama?.dispose();
  });

  it("answers as llama-server: model, object, usage and results", async () => {
    for (const body of [{ model: "my-reranker", query: QUERY, documents: DOCUMENTS }, { query: QUERY, documents: DOCUMENTS, top_n: 4 }]) {
      const expected = await reference.post("/v1/rerank", body);
      const res = await post("/v1/rerank", body);
      expect(res.status).toBe(200);
      const answer = json(res);
      expect(Object.keys(answer)).toEqual(["model", "object", "usage", "results"]);
      // llama-server echoes the request's model, else names its own.
      expect(answer).toMatchObject({ model: body.model ?? server.modelName, object: "list", usage: expected.usage });
      expectSameResults(answer.results, expected.results, "relevance_score");
    }
  });

  it("answers on /rerank, /reranking and /v1/reranking alike; top_n 0 keeps none", async () => {
    const body = { query: QUERY, documents: DOCUMENTS.slice(0, 5), top_n: 2 };
    const answers = await Promise.all(["/v1/rerank", "/rerank", "/reranking", "/v1/reranking"].map(async (path) => json(await post(path, body))));
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    expect(answers[0]!.results).toHaveLength(2);
    const none = await reference.post("/v1/rerank", { ...body, top_n: 0 });
    expect(json(await post("/v1/rerank", { ...body, top_n: 0 }))).toMatchObject({ results: none.results, usage: none.usage });
  });

  it("TEI's form: texts in, a bare array of { index, score } out, with the text on return_text", async () => {
    for (const body of [{ query: QUERY, texts: DOCUMENTS.slice(0, 6) }, { query: QUERY, texts: DOCUMENTS.slice(0, 6), return_text: true }]) {
      const expected = await fetch(`${reference.url}/v1/rerank`, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());
      const answer = JSON.parse((await post("/v1/rerank", body)).body) as unknown;
      expect(Array.isArray(answer)).toBe(true);
      expectSameResults(answer, expected, "score");
    }
  });

  it("an empty list gives empty results (llama-server answers 400)", async () => {
    expect(json(await post("/v1/rerank", { query: QUERY, documents: [] }))).toMatchObject({ results: [], usage: { prompt_tokens: 0, total_tokens: 0 } });
    expect(JSON.parse((await post("/v1/rerank", { query: QUERY, texts: [] })).body)).toEqual([]);
  });

  it("bad bodies are 400s naming the field; a document too long for the context too", async () => {
    const cases: Array<[unknown, string | null]> = [
      [{ documents: ["a"] }, "query"],
      [{ query: 5, documents: ["a"] }, "query"],
      [{ query: "q" }, "documents"],
      [{ query: "q", documents: "a" }, "documents"],
      [{ query: "q", documents: ["a", 1] }, "documents"],
      [{ query: "q", texts: [null] }, "texts"],
      [{ query: "q", documents: ["a"], top_n: -1 }, "top_n"],
      [{ query: "q", documents: ["a"], top_n: 1.5 }, "top_n"],
      [{ query: "q", texts: ["a"], return_text: "yes" }, "return_text"],
      [{ query: "q", documents: ["a"], model: 3 }, "model"],
      [["q", "a"], null],
    ];
    for (const [body, param] of cases) {
      const res = await post("/v1/rerank", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(json(res).error).toMatchObject({ type: "invalid_request_error", param, message: expect.any(String) });
    }
    const long = await post("/v1/rerank", { query: QUERY, documents: ["a", "cat ".repeat(N_CTX)] });
    expect(long.status).toBe(400);
    expect(json(long).error).toMatchObject({ code: "context_length_exceeded", message: expect.stringContaining("documents[1]") });
    expect((await raw(base, "POST", "/v1/rerank", { body: { query: "q", documents: ["a"] } })).status).toBe(401);
    expect((await raw(base, "GET", "/v1/rerank", { headers: AUTH })).status).toBe(405);
  });

  it("a round of the server fuzz breaks no rule", async () => {
    const { failures, statuses } = await fuzzServer(base, { ops: 150, seed: 23, key: KEY });
    expect(failures).toEqual([]);
    expect(statuses["200"]).toBeGreaterThan(10);
  }, 120_000);
});

describe("reranking on a model without a rank head", () => {
  it("is llama-server's 501 not_supported_error", async () => {
    const llama = await Llama.load({ modelPath: modelPath("stories260K.gguf"), nCtx: 128, nThreads: 1 });
    const server = await startServer({ llama, port: 0 });
    const reference = await startLlamaServer(modelPath("stories260K.gguf"));
    try {
      const base = server.url.replace(/\/v1$/, "");
      const body = { query: "q", documents: ["a"] };
      const res = await raw(base, "POST", "/v1/rerank", { headers: { "Content-Type": "application/json" }, body });
      const expected = await fetch(`${reference.url}/v1/rerank`, { method: "POST", body: JSON.stringify(body) });
      expect(res.status).toBe(expected.status);
      expect(json(res).error).toMatchObject({ type: ((await expected.json()) as { error: { type: string } }).error.type, message: expect.stringContaining("rank head") });
    } finally {
      await reference.stop();
      await server.close(0);
      await llama.dispose();
    }
  });
});
