// LoRA adapters (Llama.load's lora, a request's lora): a LoRA GGUF for stories260K written by the
// project's GGUF writer gives llama.cpp's own llama-completion --lora-scaled text, token for token;
// scale 0 is the base model; requests with different adapters share one Llama (and, with nParallel,
// never one batch); bad adapters are typed errors that leave the Llama working.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, LlamaError } from "../../lib/index.js";
import { drain, modelPath } from "../helpers.js";
import { loraReference, writeLoraFixture } from "../lora-fixture.js";

const STORIES = () => modelPath("stories260K.gguf");
const PROMPT = "Once upon a time";
const N = 48;
// llama-completion prints the prompt (with SentencePiece's leading space) and the continuation.
const printed = (text: string) => ` ${PROMPT}${text}`;

let dir: string;
let adapter: string;
let other: string;
/** llama-completion's text with the adapter at each scale. */
const golden = new Map<number, string>();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "llama-napi-lora-"));
  adapter = join(dir, "a.gguf");
  other = join(dir, "b.gguf");
  await writeLoraFixture(adapter, { baseModelPath: STORIES(), seed: 0 });
  await writeLoraFixture(other, { baseModelPath: STORIES(), seed: 2, rank: 2 });
  for (const scale of [0, 0.5, 1]) golden.set(scale, loraReference("stories260K.gguf", adapter, scale, PROMPT, N).toString("utf8"));
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const greedy = { maxTokens: N, temperature: 0 };

describe("LoRA adapters on stories260K", () => {
  let llm: Llama;
  let base: string;
  beforeAll(async () => {
    llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    base = (await llm.createCompletion(PROMPT, greedy)).choices[0]!.text;
  });
  afterAll(() => llm.dispose());

  it("scale 1 and 0.5 give llama-completion --lora-scaled's text; scale 0 the base model's", async () => {
    for (const scale of [1, 0.5]) {
      const res = await llm.createCompletion(PROMPT, { ...greedy, lora: [{ path: adapter, scale }] });
      expect(printed(res.choices[0]!.text)).toBe(golden.get(scale));
    }
    const zero = await llm.createCompletion(PROMPT, { ...greedy, lora: [{ path: adapter, scale: 0 }] });
    expect(zero.choices[0]!.text).toBe(base);
    expect(printed(base)).toBe(golden.get(0));
  });

  it("requests switch adapters without reloading: the base text, the adapter's, the base again, two adapters", async () => {
    const withAdapter = (await llm.createCompletion(PROMPT, { ...greedy, lora: [{ path: adapter }] })).choices[0]!.text;
    expect(withAdapter).not.toBe(base);
    // The cached prompt was decoded with the adapter: the base request must not reuse it.
    expect((await llm.createCompletion(PROMPT, greedy)).choices[0]!.text).toBe(base);
    expect((await llm.createCompletion(PROMPT, { ...greedy, lora: [{ path: adapter }] })).choices[0]!.text).toBe(withAdapter);
    const both = (await llm.createCompletion(PROMPT, { ...greedy, lora: [{ path: adapter }, { path: other, scale: 0.7 }] })).choices[0]!.text;
    expect(both).not.toBe(withAdapter);
    expect(both).not.toBe(base);
    // A stream gives the same text.
    const chunks = await drain(llm.createCompletion(PROMPT, { ...greedy, stream: true, lora: [{ path: adapter }] }));
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(withAdapter);
  });

  it("Llama.load's lora applies to every request that names none; lora: [] is the base model", async () => {
    const tuned = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, lora: [{ path: adapter }] });
    try {
      const text = (await tuned.createCompletion(PROMPT, greedy)).choices[0]!.text;
      expect(printed(text)).toBe(golden.get(1));
      expect((await tuned.createCompletion(PROMPT, { ...greedy, lora: [] })).choices[0]!.text).toBe(base);
    } finally {
      await tuned.dispose();
    }
  });

  it("with nParallel 3, concurrent requests with different adapters each get their own text", async () => {
    const parallel = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel: 3 });
    try {
      const sets = [undefined, [{ path: adapter }], [{ path: other, scale: 0.7 }], [{ path: adapter }], undefined, [{ path: other, scale: 0.7 }]];
      const alone = [];
      for (const lora of sets) alone.push((await llm.createCompletion(PROMPT, { ...greedy, lora })).choices[0]!.text);
      for (let round = 0; round < 2; round++) {
        const together = await Promise.all(sets.map((lora) => parallel.createCompletion(PROMPT, { ...greedy, lora })));
        expect(together.map((r) => r.choices[0]!.text)).toEqual(alone);
      }
    } finally {
      await parallel.dispose();
    }
  });

  it("an adapter for another architecture, a cut-off file, a non-adapter and a missing file are typed errors; the Llama goes on", async () => {
    const foreign = join(dir, "foreign.gguf");
    await writeLoraFixture(foreign, { baseModelPath: STORIES(), architecture: "qwen2" });
    const cut = join(dir, "cut.gguf");
    writeFileSync(cut, readFileSync(adapter).subarray(0, 20_000));
    const attempt = (path: string) => llm.createCompletion(PROMPT, { ...greedy, lora: [{ path }] });
    await expect(attempt(foreign)).rejects.toMatchObject({ code: "LORA_FAILED", message: expect.stringMatching(/arch/) });
    await expect(attempt(cut)).rejects.toMatchObject({ code: "LORA_FAILED" });
    await expect(attempt(STORIES())).rejects.toMatchObject({ code: "LORA_FAILED", message: expect.stringMatching(/not a LoRA adapter/) });
    await expect(attempt(join(dir, "missing.gguf"))).rejects.toBeInstanceOf(LlamaError);
    await expect(Llama.load({ modelPath: STORIES(), lora: [{ path: foreign }] })).rejects.toMatchObject({ code: "LORA_FAILED" });
    await expect(llm.createCompletion(PROMPT, { lora: [{ scale: 1 }] as never })).rejects.toThrow(/lora\[0\]\.path is required/);
    await expect(llm.createCompletion(PROMPT, { lora: { path: adapter } as never })).rejects.toThrow(TypeError);
    await expect(llm.createCompletion(PROMPT, { lora: [{ path: adapter, scale: "1" }] as never })).rejects.toThrow(/lora\[0\]\.scale/);
    expect((await llm.createCompletion(PROMPT, greedy)).choices[0]!.text).toBe(base);
  });
});

describe("LlamaLora, the low-level adapter", () => {
  it("loads for a model, reads its metadata, and a context applies it with setLoras: llama-completion's text", async () => {
    const { LlamaLora, LlamaModel, generateTokens } = await import("../../lib/index.js");
    const model = await LlamaModel.load(STORIES());
    const context = await model.createContext({ nCtx: 256, nThreads: 1 });
    const sampler = model.createSampler({ temperature: 0 });
    const lora = await LlamaLora.load(model, adapter);
    try {
      expect(lora.metadata()["adapter.type"]).toBe("lora");
      expect(lora.alpha).toBe(4);
      await context.setLoras([{ lora, scale: 1 }]);
      // A context keeps the adapters it applies: disposing the handle leaves the context working.
      lora.dispose();
      lora.dispose();
      const decoder = model.createTokenDecoder();
      let text = "";
      for await (const token of generateTokens(context, sampler, model.tokenize(PROMPT), { maxTokens: N })) text += decoder.push(token);
      expect(printed(text + decoder.flush())).toBe(golden.get(1));
      expect(() => lora.native).toThrow(/disposed/);
      await expect(context.setLoras([{ lora, scale: 1 }])).rejects.toMatchObject({ code: "DISPOSED" });
    } finally {
      sampler.dispose();
      await context.dispose();
      model.dispose();
    }
  });
});
