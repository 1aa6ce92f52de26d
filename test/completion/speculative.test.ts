// Speculative decoding (Llama.load's draft): a draft model or n-gram lookup proposes tokens, one
// decode verifies them, and the output is what generation without a draft gives, token for token
// (greedy, and sampled with a seed), with stop strings, grammar, logprobs, nParallel and abort.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, LlamaError, type CompletionLogprobs, type CompletionOptions, type DraftOptions } from "../../lib/index.js";
import { storiesModel } from "../fixtures.js";
import { drain, modelPath } from "../helpers.js";

const STORIES = () => modelPath("stories260K.gguf");
// A story the model retells: once it starts copying, n-gram lookup predicts the rest.
const RETELL =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. " +
  "She ran to get it. Once upon a time, there was a little girl named Lily.";
const PROMPTS = ["Once upon a time", "Lily and Tom went to the park", "The little dog was sad because", RETELL];

/**
 * The same tokens, offsets and alternatives; the values agree to 0.05: a verifying decode of several
 * tokens takes other kernels than a decode of one, whose sums differ in the last bits, and KV entries
 * written by such decodes carry that on (up to 0.01 on an alternative at -10 here). A token at the
 * wrong position would be off by whole units.
 */
function sameLogprobs(got: CompletionLogprobs | null, expected: CompletionLogprobs | null): void {
  if (expected === null) {
    expect(got).toBeNull();
    return;
  }
  expect(got!.tokens).toEqual(expected.tokens);
  expect(got!.text_offset).toEqual(expected.text_offset);
  got!.token_logprobs.forEach((value, i) => expect(value).toBeCloseTo(expected.token_logprobs[i]!, 1));
  got!.top_logprobs.forEach((top, i) => {
    expect(Object.keys(top!).sort()).toEqual(Object.keys(expected.top_logprobs[i]!).sort());
    for (const [token, value] of Object.entries(top!)) expect(value).toBeCloseTo(expected.top_logprobs[i]![token]!, 1);
  });
}

describe("speculative decoding on stories260K", () => {
  let plain: Llama;
  const drafted: Record<string, Llama> = {};
  const drafts: Record<string, () => Promise<DraftOptions>> = {
    // The model itself: every draft is taken.
    self: async () => ({ modelPath: STORIES(), nDraft: 6 }),
    // Its Q4_0 quantization: drafts taken in part, so verifying steps end early.
    q4: async () => ({ modelPath: await storiesModel("Q4_0"), nDraft: 8, pMin: 0 }),
    ngram: async () => ({ type: "ngram", nDraft: 8, ngramSize: 2 }),
  };
  beforeAll(async () => {
    plain = await Llama.load({ modelPath: STORIES(), nCtx: 512, nThreads: 1 });
    for (const [name, draft] of Object.entries(drafts)) {
      drafted[name] = await Llama.load({ modelPath: STORIES(), nCtx: 512, nThreads: 1, draft: await draft() });
    }
  }, 120_000);
  afterAll(async () => {
    await plain.dispose();
    for (const llm of Object.values(drafted)) await llm.dispose();
  });

  async function same(options: CompletionOptions & { stream?: false }, prompts = PROMPTS): Promise<Record<string, { drafted: number; accepted: number }>> {
    const counts: Record<string, { drafted: number; accepted: number }> = {};
    for (const prompt of prompts) {
      const expected = await plain.createCompletion(prompt, options);
      expect(expected.usage.draft_tokens).toBeUndefined();
      for (const [name, llm] of Object.entries(drafted)) {
        const res = await llm.createCompletion(prompt, options);
        expect({ name, prompt, text: res.choices[0]!.text, finish: res.choices[0]!.finish_reason }).toEqual({
          name,
          prompt,
          text: expected.choices[0]!.text,
          finish: expected.choices[0]!.finish_reason,
        });
        sameLogprobs(res.choices[0]!.logprobs, expected.choices[0]!.logprobs);
        expect(res.usage.completion_tokens).toBe(expected.usage.completion_tokens);
        const c = (counts[name] ??= { drafted: 0, accepted: 0 });
        c.drafted += res.usage.draft_tokens!;
        c.accepted += res.usage.draft_accepted!;
        expect(res.usage.draft_accepted!).toBeLessThanOrEqual(res.usage.draft_tokens!);
      }
    }
    return counts;
  }

  it("greedy output is token-identical to generation without a draft, and drafts are taken", async () => {
    const counts = await same({ maxTokens: 120, temperature: 0 });
    // The model drafting for itself agrees with itself.
    expect(counts.self!.drafted).toBeGreaterThan(100);
    expect(counts.self!.accepted / counts.self!.drafted).toBeGreaterThan(0.95);
    expect(counts.q4!.accepted).toBeGreaterThan(0);
    expect(counts.q4!.accepted).toBeLessThan(counts.q4!.drafted);
    expect(counts.ngram!.accepted).toBeGreaterThan(10);
  });

  it("output that falls into a loop: llama-lookup's n-gram cache drafts it, and nearly all is taken", async () => {
    // A negative frequency penalty makes the model repeat one token: too short a period for prompt
    // lookup (ngram-simple), which the n-gram cache covers.
    const counts = await same({ maxTokens: 200, temperature: 0, frequencyPenalty: -1.5 }, PROMPTS.slice(0, 1));
    expect(counts.ngram!.drafted).toBeGreaterThan(100);
    expect(counts.ngram!.accepted / counts.ngram!.drafted).toBeGreaterThan(0.9);
  });

  it("sampled output with a seed is the same tokens: each token is sampled from the model's own logits, in order", async () => {
    const counts = await same({ maxTokens: 80, temperature: 0.9, topK: 40, topP: 0.95, repeatPenalty: 1.1, seed: 7 });
    expect(counts.self!.accepted).toBeGreaterThan(0);
  });

  it("drafting backs off where drafts are not taken: sampling hot, few tokens are drafted", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 512, nThreads: 1, draft: { modelPath: await storiesModel("Q4_0"), nDraft: 8, pMin: 0 } });
    try {
      const hot = await llm.createCompletion("Once upon a time", { maxTokens: 200, temperature: 3, topK: 0, seed: 11 });
      const plainHot = await plain.createCompletion("Once upon a time", { maxTokens: 200, temperature: 3, topK: 0, seed: 11 });
      expect(hot.choices[0]!.text).toBe(plainHot.choices[0]!.text);
      // Without backing off, every step would draft 8 tokens: several times the tokens generated.
      expect(hot.usage.draft_tokens!).toBeLessThan(hot.usage.completion_tokens);
    } finally {
      await llm.dispose();
    }
  });

  it("stop strings, a grammar and logprobs give what plain generation gives", async () => {
    await same({ maxTokens: 100, temperature: 0, stop: ["park", "ball"] });
    await same({ maxTokens: 60, temperature: 0, grammar: 'root ::= ("Lily" | "Tom" | " " | "and" | "played" | "ran")+ "."' });
    // With logprobs each token's comes from the verifying decode.
    const counts = await same({ maxTokens: 48, temperature: 0, logprobs: 3 }, PROMPTS.slice(0, 2));
    expect(counts.self!.accepted).toBeGreaterThan(0);
  });

  it("a stream gives the text the whole completion gives", async () => {
    const llm = drafted.q4!;
    const whole = await llm.createCompletion(RETELL, { maxTokens: 100, temperature: 0 });
    const chunks = await drain(llm.createCompletion(RETELL, { maxTokens: 100, temperature: 0, stream: true, streamOptions: { includeUsage: true } }));
    expect(chunks.map((c) => c.choices[0]?.text ?? "").join("")).toBe(whole.choices[0]!.text);
    // The last chunk carries the usage, draft counts included, and no choices; the others carry null.
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    // (The draft counts differ between runs: drafting's back-off carries over on the sequence.)
    expect(last.usage).toMatchObject({ ...whole.usage, draft_tokens: expect.any(Number), draft_accepted: expect.any(Number) });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it("an abort mid-generation rejects with ABORTED and the Llama goes on", async () => {
    const llm = drafted.self!;
    const controller = new AbortController();
    let seen = 0;
    const stream = llm.createCompletion(RETELL, { maxTokens: 400, temperature: 0, stream: true, signal: controller.signal });
    await expect(
      (async () => {
        for await (const _ of stream) if (++seen === 5) controller.abort();
      })(),
    ).rejects.toMatchObject({ code: "ABORTED" });
    const after = await llm.createCompletion("Once upon a time", { maxTokens: 30, temperature: 0 });
    expect(after.choices[0]!.text).toBe((await plain.createCompletion("Once upon a time", { maxTokens: 30, temperature: 0 })).choices[0]!.text);
  });
});

describe("speculative decoding and dispose", () => {
  it("a Llama disposed mid-run ends its stream with DISPOSED and frees the draft model; dispose is idempotent", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 512, nThreads: 1, draft: { modelPath: STORIES(), nDraft: 4 } });
    let seen = 0;
    const reading = (async () => {
      for await (const _ of llm.createCompletion(RETELL, { maxTokens: 400, temperature: 0, stream: true })) {
        if (++seen === 3) void llm.dispose();
      }
    })();
    await expect(reading).rejects.toMatchObject({ code: "DISPOSED" });
    await llm.dispose();
    await expect(llm.createCompletion("Once", { maxTokens: 2 })).rejects.toMatchObject({ code: "DISPOSED" });
  });
});

describe("speculative decoding with nParallel", () => {
  it("concurrent requests on 2 sequences each give their plain output, drafting in shared batches", async () => {
    const plain = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel: 2, draft: { modelPath: await storiesModel("Q4_0"), pMin: 0 } });
    try {
      const options = { maxTokens: 80, temperature: 0 };
      const expected = await Promise.all(PROMPTS.map((p) => plain.createCompletion(p, options)));
      // Several rounds: requests overlap, and a sequence left alone speculates.
      for (let round = 0; round < 2; round++) {
        const batchesBefore = llm.stats.maxSequencesPerBatch;
        const got = await Promise.all(PROMPTS.map((p) => llm.createCompletion(p, options)));
        expect(got.map((r) => r.choices[0]!.text)).toEqual(expected.map((r) => r.choices[0]!.text));
        // Sequences decoded together draft too (each its own draft, in the shared batch).
        expect(Math.max(batchesBefore, llm.stats.maxSequencesPerBatch)).toBe(2);
        expect(got.reduce((n, r) => n + r.usage.draft_accepted!, 0)).toBeGreaterThan(0);
      }
      const alone = await llm.createCompletion(RETELL, options);
      expect(alone.usage.draft_tokens).toBeGreaterThan(0);
    } finally {
      await llm.dispose();
      await plain.dispose();
    }
  }, 60_000);
});

describe("speculative decoding with a context shift", () => {
  it("a generation past its context shifts and goes on drafting: the text is plain generation's", async () => {
    const options = { maxTokens: 600, temperature: 0, contextShift: { keep: 4 } };
    const plain = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, draft: { type: "ngram", nDraft: 8, ngramSize: 2 } });
    const model = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, draft: { modelPath: await storiesModel("Q4_0"), pMin: 0 } });
    try {
      const expected = await plain.createCompletion(RETELL, options);
      expect(expected.usage.completion_tokens).toBe(600);
      for (const drafted of [llm, model]) {
        const res = await drafted.createCompletion(RETELL, options);
        expect(res.choices[0]!.text).toBe(expected.choices[0]!.text);
        expect(res.usage.draft_accepted).toBeGreaterThan(0);
      }
    } finally {
      await Promise.all([plain.dispose(), llm.dispose(), model.dispose()]);
    }
  }, 60_000);
});

describe("draft options", () => {
  it("a draft model with another vocabulary is INCOMPATIBLE_DRAFT", async () => {
    const attempt = Llama.load({ modelPath: STORIES(), nCtx: 128, draft: { modelPath: modelPath("llama-2-tiny-random.gguf") } });
    await expect(attempt).rejects.toBeInstanceOf(LlamaError);
    await expect(attempt).rejects.toMatchObject({ code: "INCOMPATIBLE_DRAFT" });
    // Nothing is left half-set: the same model loads and generates.
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 128 });
    expect((await llm.createCompletion("Once", { maxTokens: 4 })).usage.completion_tokens).toBe(4);
    await llm.dispose();
  });

  it("a missing draft model is MODEL_NOT_FOUND; bad draft options are precise TypeErrors and RangeErrors", async () => {
    await expect(Llama.load({ modelPath: STORIES(), draft: { modelPath: "/nonexistent/draft.gguf" } })).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
    const load = (draft: unknown) => Llama.load({ modelPath: STORIES(), draft: draft as DraftOptions });
    await expect(load({ nDraft: 4 })).rejects.toThrow(/options\.draft\.modelPath is required/);
    await expect(load({ type: "lookup" })).rejects.toThrow(RangeError);
    await expect(load({ type: "ngram", nDraft: 0 })).rejects.toThrow(/options\.draft\.nDraft/);
    await expect(load({ modelPath: STORIES(), pMin: 2 })).rejects.toThrow(/options\.draft\.pMin/);
    await expect(load({ type: "ngram", modelPath: STORIES() })).rejects.toThrow(/options\.draft\.modelPath is not a known option/);
    await expect(load("ngram")).rejects.toThrow(TypeError);
  });
});
