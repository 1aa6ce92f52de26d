// Greedy generation through the low-level classes equals llama.cpp's own output
// (llama-completion at temperature 0, built from the vendored source and run here), and sampling behaves.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaContext, LlamaModel, LlamaSampler, generateTokens } from "../../lib/index.js";
import { ONCE_UPON_A_TIME_GREEDY, modelPath } from "../helpers.js";
import { greedyReferences } from "../llama-cpp-tools.js";

const goldens = greedyReferences();

async function collect(iterable: AsyncIterable<number>): Promise<number[]> {
  const out: number[] = [];
  for await (const token of iterable) out.push(token);
  return out;
}

describe.each(goldens)("greedy $model $prompt", (golden) => {
  it("prints exactly what llama.cpp printed", async () => {
    const model = await LlamaModel.load(modelPath(golden.model));
    const context = await model.createContext({ nCtx: 512, nThreads: 2 });
    const sampler = model.createSampler({ temperature: 0 });
    try {
      // llama.cpp tokenizes with BOS and special-token parsing and prints the prompt's pieces but BOS.
      const prompt = model.tokenize(golden.prompt, { addSpecial: true, parseSpecial: true });
      const pieces: Uint8Array[] = Array.from(prompt.subarray(1), (t) => model.tokenBytes(t, true));
      for await (const token of generateTokens(context, sampler, prompt, { maxTokens: golden.nPredict })) {
        pieces.push(model.tokenBytes(token, true));
      }
      expect(Buffer.concat(pieces).toString("hex")).toBe(golden.printed.toString("hex"));
    } finally {
      sampler.dispose();
      await context.dispose();
      model.dispose();
    }
  });
});

describe("the stories260K text other tests spell out", () => {
  it("is llama-completion's, and each of its tokens leads the runner-up by far more than CPU kernels move a logit", async () => {
    const golden = goldens.find((g) => g.model === "stories260K.gguf" && g.prompt === "Once upon a time")!;
    expect(golden.printed.toString("utf8").startsWith(` Once upon a time${ONCE_UPON_A_TIME_GREEDY}`)).toBe(true);
    const model = await LlamaModel.load(modelPath("stories260K.gguf"));
    const context = await model.createContext({ nCtx: 128, nThreads: 2 });
    try {
      let batch = Array.from(model.tokenize("Once upon a time"));
      let text = "";
      const gaps: number[] = [];
      while (text.length < ONCE_UPON_A_TIME_GREEDY.length) {
        await context.decode({ tokens: batch, logits: "last" });
        const logits = context.logits(batch.length - 1);
        const best = logits.indexOf(Math.max(...logits));
        gaps.push(logits[best]! - Math.max(...logits.filter((_, i) => i !== best)));
        text += Buffer.from(model.tokenBytes(best)).toString("utf8");
        batch = [best];
      }
      expect(text).toBe(ONCE_UPON_A_TIME_GREEDY);
      // The smallest lead is 0.13 (" " before "outside"; 0.84 over ", there was a little girl named
      // Lily"). Kernels of different CPUs, and batched against single decodes, differ by about 1e-4
      // in a logit: a lead of 0.01 is a hundred times that.
      expect(Math.min(...gaps)).toBeGreaterThan(0.01);
    } finally {
      await context.dispose();
      model.dispose();
    }
  });
});

describe("on stories260K", () => {
  let model: LlamaModel;
  let context: LlamaContext;
  beforeAll(async () => {
    model = await LlamaModel.load(modelPath("stories260K.gguf"));
    context = await model.createContext({ nCtx: 256, nThreads: 2 });
  });
  afterAll(async () => {
    await context.dispose();
    model.dispose();
  });

  describe("sampling", () => {
    async function run(sampler: LlamaSampler, maxTokens = 40): Promise<number[]> {
      context.clear();
      return collect(generateTokens(context, sampler, model.tokenize("Once upon a time"), { maxTokens }));
    }

    it("the same seed gives the same tokens, another seed other tokens", async () => {
      const a = await run(model.createSampler({ temperature: 1, seed: 42, topK: 0, topP: 1, minP: 0 }));
      const b = await run(model.createSampler({ temperature: 1, seed: 42, topK: 0, topP: 1, minP: 0 }));
      const c = await run(model.createSampler({ temperature: 1, seed: 7, topK: 0, topP: 1, minP: 0 }));
      expect(a).toEqual(b);
      expect(c).not.toEqual(a);
    });

    it("decodeAndSample picks the argmax of the logits that decode leaves", async () => {
      context.clear();
      const prompt = model.tokenize("The cat");
      await context.decode({ tokens: prompt, logits: "last" });
      const logits = context.logits(prompt.length - 1);
      expect(logits.length).toBe(model.nVocab);
      const argmax = logits.indexOf(Math.max(...logits));
      const greedy = model.createSampler({ temperature: 0 });
      expect(greedy.sample(context, prompt.length - 1)).toBe(argmax);

      context.clear();
      const result = await context.decodeAndSample({ tokens: prompt }, [{ sampler: greedy, index: prompt.length - 1 }], { logprobs: 3 });
      expect(result.tokens[0]).toBe(argmax);
      expect(result.top![0]!.ids[0]).toBe(argmax);
      expect(result.logprobs![0]).toBeCloseTo(result.top![0]!.logprobs[0]!, 5);
      expect(result.logprobs![0]).toBeLessThan(0);
      greedy.dispose();
    });

    it("builds llama.cpp's sampler chain from options", () => {
      const chain = model.createSampler({ temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repeatPenalty: 1.1, seed: 1 });
      expect(chain.describe()).toEqual(["penalties", "top-k", "top-p", "min-p", "temp", "dist"]);
      expect(model.createSampler({ temperature: 0.8, mirostat: { mode: 2 } }).describe()).toEqual(["temp", "mirostat-v2"]);
      expect(model.createSampler({ temperature: 0, logitBias: { 5: -Infinity } }).describe()).toEqual(["logit-bias", "greedy"]);
    });

    it("logit bias bans a token and a grammar constrains the output", async () => {
      const free = await run(model.createSampler({ temperature: 0 }), 10);
      const banned = free[0]!;
      const biased = await run(model.createSampler({ temperature: 0, logitBias: { [banned]: -Infinity } }), 10);
      expect(biased[0]).not.toBe(banned);

      const grammar = 'root ::= " yes" | " no"';
      const constrained = await run(model.createSampler({ temperature: 0, grammar }), 10);
      // Pieces as generated: detokenize() would drop the leading space of a text's first SPM token.
      const text = Buffer.concat(constrained.map((t) => model.tokenBytes(t))).toString("utf8");
      expect([" yes", " no"]).toContain(text);
    });

    it("a sampler's accept and reset feed the repetition penalty", async () => {
      const sampler = model.createSampler({ temperature: 0, repeatPenalty: 1.5, repeatLastN: 64 });
      const first = await run(sampler, 30);
      sampler.reset();
      const second = await run(sampler, 30);
      expect(second).toEqual(first);
    });
  });

  describe("generateAhead (a sequence generated natively, one token ahead of JS)", () => {

    const seeded = () => model.createSampler({ temperature: 0.9, seed: 11, topK: 0, topP: 1, minP: 0 });

    /** The prompt decoded and its first token sampled: what generateAhead starts from. */
    async function start(sampler: LlamaSampler): Promise<{ token: number; position: number }> {
      context.clear();
      const prompt = model.tokenize("Once upon a time");
      const first = await context.decodeAndSample({ tokens: prompt }, [{ sampler, index: prompt.length - 1 }]);
      return { token: first.tokens[0]!, position: prompt.length };
    }

    /**
     * generateAhead from `from` until a run ends for a reason of its own: on a busy machine a run
     * also ends when onToken falls behind, and the next goes on from there.
     */
    async function generateAll(
      from: { token: number; position: number },
      sampler: LlamaSampler,
      maxTokens: number,
      maxPosition: number,
      onToken: (token: number) => unknown = () => undefined,
    ) {
      const sampled: number[] = [];
      const decoded: number[] = [];
      for (;;) {
        const run = await context.generateAhead({ ...from, seqId: 0, maxTokens: maxTokens - sampled.length, maxPosition, stopAtEog: false }, sampler, onToken).done;
        sampled.push(...run.sampled);
        decoded.push(...run.decoded);
        from = { token: sampled.at(-1)!, position: from.position + run.decoded.length };
        if (sampled.length >= maxTokens || from.position >= maxPosition) return { sampled, decoded };
      }
    }

    it("samples the tokens of the step-by-step loop, in order, each once", async () => {
      context.clear();
      const stepwise = await collect(generateTokens(context, seeded(), model.tokenize("Once upon a time"), { maxTokens: 40, stopAtEog: false }));
      const sampler = seeded();
      const { token, position } = await start(sampler);
      const seen: number[] = [];
      const result = await generateAll({ token, position }, sampler, 39, context.nCtxSeq, (t) => seen.push(t));
      expect([token, ...seen]).toEqual(stepwise);
      expect(result.sampled).toEqual(seen);
      // Everything but the last sampled token is in the KV cache, after the prompt.
      expect(result.decoded).toEqual([token, ...seen.slice(0, -1)]);
      expect(context.maxPosition(0)).toBe(position + 38);
    });

    it("stays within one token of a slow consumer, so stop() wastes at most the decode in flight", async () => {
      const sampler = seeded();
      const { token, position } = await start(sampler);
      let calls = 0;
      const run = context.generateAhead({ token, position, seqId: 0, maxTokens: 100, maxPosition: context.nCtxSeq, stopAtEog: false }, sampler, () => {
        const until = performance.now() + 5; // a token of this model takes well under a millisecond
        while (performance.now() < until);
        if (++calls === 3) run.stop();
      });
      const result = await run.done;
      expect(result.decoded.length).toBeLessThanOrEqual(4);
      expect(result.sampled.length).toBe(result.decoded.length);
    });

    it("ends at maxTokens, at maxPosition and at an end-of-generation token", async () => {
      let sampler = seeded();
      let from = await start(sampler);
      const limited = await generateAll(from, sampler, 5, 1000);
      expect(limited.sampled.length).toBe(5);
      sampler = seeded();
      from = await start(sampler);
      const bounded = await generateAll(from, sampler, 100, from.position + 3);
      expect(bounded.decoded.length).toBe(3);
      const eos = model.info.eos;
      sampler = model.createSampler({ temperature: 0, logitBias: { [eos]: 100 } });
      from = await start(model.createSampler({ temperature: 0 }));
      // The first token sampled: a run never falls behind before its third.
      const ended = await context.generateAhead({ ...from, seqId: 0, maxTokens: 100, maxPosition: 1000, stopAtEog: true }, sampler, () => undefined).done;
      expect(Array.from(ended.sampled)).toEqual([eos]);
    });

    it("an onToken that throws rejects done with its error and leaves the context usable", async () => {
      const sampler = seeded();
      const { token, position } = await start(sampler);
      const failure = new Error("consumer failed");
      const run = context.generateAhead({ token, position, seqId: 0, maxTokens: 50, maxPosition: context.nCtxSeq, stopAtEog: false }, sampler, () => {
        throw failure;
      });
      await expect(run.done).rejects.toBe(failure);
      const again = await start(seeded());
      expect(again.position).toBeGreaterThan(0);
    });

    it("an AbortSignal rejects done with ABORTED; bad requests are RangeError/TypeError", async () => {
      const sampler = seeded();
      const { token, position } = await start(sampler);
      const controller = new AbortController();
      const run = context.generateAhead({ token, position, seqId: 0, maxTokens: 200, maxPosition: context.nCtxSeq, stopAtEog: false }, sampler, () => controller.abort(), {
        signal: controller.signal,
      });
      await expect(run.done).rejects.toMatchObject({ code: "ABORTED" });
      // Aborted by a slow onToken (the run always samples two tokens): ABORTED, whether the run was
      // waiting for onToken to catch up or had already ended because onToken fell behind.
      const waiting = new AbortController();
      let calls = 0;
      const slow = context.generateAhead({ ...(await start(sampler)), seqId: 0, maxTokens: 200, maxPosition: context.nCtxSeq, stopAtEog: false }, sampler, () => {
        const until = performance.now() + 5;
        while (performance.now() < until);
        if (++calls === 2) waiting.abort();
      }, { signal: waiting.signal });
      await expect(slow.done).rejects.toMatchObject({ code: "ABORTED" });
      const request = { token, position, seqId: 0, maxTokens: 1, maxPosition: 10, stopAtEog: false };
      expect(() => context.generateAhead({ ...request, token: model.nVocab }, sampler, () => undefined)).toThrow(RangeError);
      expect(() => context.generateAhead({ ...request, seqId: 1 }, sampler, () => undefined)).toThrow(/seqId/);
      expect(() => context.generateAhead(request, sampler, "no" as never)).toThrow(TypeError);
    });

    it("on a disposed context, done rejects with DISPOSED, as every queued operation does", async () => {
      const disposed = await model.createContext({ nCtx: 64, nThreads: 1 });
      await disposed.dispose();
      const run = disposed.generateAhead({ token: 1, position: 0, seqId: 0, maxTokens: 4, maxPosition: 64, stopAtEog: false }, seeded(), () => undefined);
      await expect(run.done).rejects.toMatchObject({ code: "DISPOSED" });
      await expect(disposed.decode({ tokens: [1] })).rejects.toMatchObject({ code: "DISPOSED" });
    });
  });
});
