// Llama.rerank on synthetic Qwen3 rerankers (test/fixtures.ts), checked against llama-server built
// from the vendored llama.cpp and run here: the same scores, order and token counts. Both run with
// flash attention off: with it, llama.cpp's scores move in the fourth decimal with the documents a
// decode holds beside one another, and the two servers batch documents differently.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasRankHead } from "../../lib/core/model-file.js";
import { writeGguf } from "../../lib/gguf/writer.js";
import { GgmlType } from "../../lib/gguf/types.js";
import { Llama, type RerankResult } from "../../lib/index.js";
import { RERANK_DOCUMENTS as DOCUMENTS, RERANK_QUERY as QUERY, rerankerModel } from "../fixtures.js";
import { drain, errorOf, modelPath } from "../helpers.js";
import { startLlamaServer, type LlamaServer } from "../llama-server.js";

const N_CTX = 1024;

function byIndex(results: readonly RerankResult[]): number[] {
  const scores: number[] = [];
  for (const r of results) scores[r.index] = r.relevance_score;
  return scores;
}

function expectSameRanking(mine: readonly RerankResult[], reference: readonly RerankResult[]): void {
  expect(mine.map((r) => r.index)).toEqual(reference.map((r) => r.index));
  mine.forEach((r, i) => expect(Math.abs(r.relevance_score - reference[i]!.relevance_score)).toBeLessThan(1e-4));
}

describe.each(["template", "plain"] as const)("rerank on a Qwen3 reranker (%s prompt)", (variant) => {
  let llm: Llama;
  let server: LlamaServer;
  beforeAll(async () => {
    const path = await rerankerModel(variant);
    llm = await Llama.load({ modelPath: path, nCtx: N_CTX, nThreads: 2, flashAttn: false });
    server = await startLlamaServer(path, ["--reranking", "-fa", "off", "-c", String(4 * N_CTX), "-b", String(N_CTX), "-ub", String(N_CTX)]);
  });
  afterAll(async () => {
    await server?.stop();
    await llm?.dispose();
  });

  it("scores, orders and counts tokens as llama-server does", async () => {
    const reference = await server.post("/v1/rerank", { query: QUERY, documents: DOCUMENTS });
    const list = await llm.createRerank(QUERY, DOCUMENTS);
    expect(list).toMatchObject({ model: llm.modelPath, object: "list", usage: reference.usage });
    expect(list.results).toHaveLength(DOCUMENTS.length);
    expectSameRanking(list.results, reference.results as RerankResult[]);
    // Scores that differ by far more than the tolerance, so that the order means something.
    const scores = byIndex(list.results);
    expect(Math.max(...scores) - Math.min(...scores)).toBeGreaterThan(0.05);
    expect(await llm.rerank(QUERY, DOCUMENTS)).toEqual(list.results);
  });

  it("topN keeps the best results, as llama-server's top_n", async () => {
    const reference = await server.post("/v1/rerank", { query: QUERY, documents: DOCUMENTS, top_n: 3 });
    const results = await llm.rerank(QUERY, DOCUMENTS, { topN: 3 });
    expect(results).toHaveLength(3);
    expectSameRanking(results, reference.results as RerankResult[]);
    expect(await llm.rerank(QUERY, DOCUMENTS.slice(0, 2), { topN: 5 })).toHaveLength(2);
  });

  it("scores a document alone as among others", async () => {
    const all = byIndex(await llm.rerank(QUERY, DOCUMENTS));
    for (const i of [0, 3, 7]) {
      const [alone] = await llm.rerank(QUERY, [DOCUMENTS[i]!]);
      expect(alone!.index).toBe(0);
      expect(Math.abs(alone!.relevance_score - all[i]!)).toBeLessThan(1e-4);
    }
  });
});

describe("rerank's requests and failures", () => {
  let llm: Llama;
  let tmp: string;
  beforeAll(async () => {
    llm = await Llama.load({ modelPath: await rerankerModel("template"), nCtx: N_CTX, nThreads: 1, nParallel: 2 });
    tmp = mkdtempSync(join(tmpdir(), "llama-napi-rerank-"));
  });
  afterAll(async () => {
    await llm?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it("an empty list gives an empty result", async () => {
    expect(await llm.rerank(QUERY, [])).toEqual([]);
    expect(await llm.createRerank(QUERY, [])).toMatchObject({ results: [], usage: { prompt_tokens: 0, total_tokens: 0 } });
  });

  it("checks its arguments", async () => {
    await expect(llm.rerank(1 as unknown as string, ["a"])).rejects.toThrow(/query must be a string/);
    await expect(llm.rerank(QUERY, "a" as unknown as string[])).rejects.toThrow(/documents must be an array of strings/);
    await expect(llm.rerank(QUERY, ["a", 2 as unknown as string])).rejects.toThrow(/documents\[1\] must be a string/);
    await expect(llm.rerank(QUERY, ["a"], { topN: 0 })).rejects.toThrow(RangeError);
    await expect(llm.rerank(QUERY, ["a"], { topN: 1.5 })).rejects.toThrow(RangeError);
    await expect(llm.rerank(QUERY, ["a"], { top_n: 1 } as never)).rejects.toThrow(/options.top_n is not a known option/);
  });

  it("a document whose prompt outgrows the context is CONTEXT_FULL, naming it", async () => {
    const long = "cat ".repeat(N_CTX);
    const err = await errorOf(() => llm.rerank(QUERY, ["short", long]));
    expect(err).toMatchObject({ code: "CONTEXT_FULL", message: expect.stringContaining("documents[1]") });
    // Nothing was left behind.
    expect(await llm.rerank(QUERY, ["short"])).toHaveLength(1);
  });

  it("two calls at once score as each alone; a signal aborts one", async () => {
    const [alone1, alone2] = [await llm.rerank(QUERY, DOCUMENTS), await llm.rerank("Paris", DOCUMENTS.slice(0, 5))];
    const [both1, both2] = await Promise.all([llm.rerank(QUERY, DOCUMENTS), llm.rerank("Paris", DOCUMENTS.slice(0, 5))]);
    expect(both1).toEqual(alone1);
    expect(both2).toEqual(alone2);
    const controller = new AbortController();
    const first = llm.rerank(QUERY, DOCUMENTS);
    const aborted = llm.rerank(QUERY, DOCUMENTS, { signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ code: "ABORTED" });
    expect(await first).toEqual(alone1);
    await expect(llm.rerank(QUERY, ["a"], { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: "ABORTED" });
  });

  it("reranks while completions generate, neither changing the other", async () => {
    const prompt = "The cat";
    const alone = await llm.createCompletion(prompt, { maxTokens: 48, temperature: 0 });
    const ranked = await llm.rerank(QUERY, DOCUMENTS);
    const stream = drain(llm.createCompletion(prompt, { maxTokens: 48, temperature: 0, stream: true }));
    const whole = llm.createCompletion(prompt, { maxTokens: 48, temperature: 0 });
    const during = await llm.rerank(QUERY, DOCUMENTS);
    expect(during).toEqual(ranked);
    expect((await stream).map((c) => c.choices[0]?.text ?? "").join("")).toBe(alone.choices[0]!.text);
    expect((await whole).choices[0]!.text).toBe(alone.choices[0]!.text);
  });

  it("a model without a rank head is UNSUPPORTED, as is a vocabOnly Llama", async () => {
    const stories = await Llama.load({ modelPath: modelPath("stories260K.gguf"), nCtx: 128, nThreads: 1 });
    try {
      await expect(stories.rerank(QUERY, ["a"])).rejects.toMatchObject({ code: "UNSUPPORTED", message: expect.stringContaining("rank head") });
      await expect(stories.rerank(QUERY, [])).rejects.toMatchObject({ code: "UNSUPPORTED" });
    } finally {
      await stories.dispose();
    }
    const vocab = await Llama.load({ modelPath: await rerankerModel("template"), vocabOnly: true });
    try {
      await expect(vocab.rerank(QUERY, ["a"])).rejects.toMatchObject({ code: "UNSUPPORTED" });
    } finally {
      await vocab.dispose();
    }
  });

  it("finds a rank head in any file of a split model", async () => {
    const tensor = (name: string) => ({ name, dims: [4], type: GgmlType.F32, fill: (chunk: Buffer) => void chunk.fill(0) });
    const split = (no: number, names: string[]) => ({
      kvs: [
        { key: "split.no", type: "uint16" as const, value: no },
        { key: "split.count", type: "uint16" as const, value: 2 },
      ],
      tensors: names.map(tensor),
    });
    const first = join(tmp, "m-00001-of-00002.gguf");
    await writeGguf(first, split(0, ["token_embd.weight"]));
    await writeGguf(join(tmp, "m-00002-of-00002.gguf"), split(1, ["cls.output.weight"]));
    expect(await hasRankHead(first)).toBe(true);
    await writeGguf(join(tmp, "m-00002-of-00002.gguf"), split(1, ["output.weight"]));
    expect(await hasRankHead(first)).toBe(false);
  });

  it("is DISPOSED once the Llama is", async () => {
    const other = await Llama.load({ modelPath: await rerankerModel("template"), nCtx: 256, nThreads: 1 });
    await other.rerank(QUERY, ["a"]);
    await other.dispose();
    await expect(other.rerank(QUERY, ["a"])).rejects.toMatchObject({ code: "DISPOSED" });
  });
});
