// Bad input gets a typed error and leaves the process and everything else usable.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaError, LlamaModel, generateTokens, quantize } from "../../lib/index.js";
import { modelPath } from "../helpers.js";

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "llama-napi-errors-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function loadError(path: string, options = {}): Promise<LlamaError> {
  const error = await LlamaModel.load(path, options).then(
    () => null,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(LlamaError);
  return error as LlamaError;
}

describe("model files", () => {
  it("a missing file is MODEL_NOT_FOUND", async () => {
    const error = await loadError(join(scratch, "nope.gguf"));
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toContain("nope.gguf");
  });

  it("a directory is MODEL_NOT_FOUND", async () => {
    expect((await loadError(scratch)).code).toBe("MODEL_NOT_FOUND");
  });

  it("a file that is not GGUF is INVALID_GGUF", async () => {
    const path = join(scratch, "text.gguf");
    writeFileSync(path, "this is not a model, just some text that is long enough");
    const error = await loadError(path);
    expect(error.code).toBe("INVALID_GGUF");
    expect(error.message).toContain("not a GGUF file");
  });

  it("an empty file is INVALID_GGUF", async () => {
    const path = join(scratch, "empty.gguf");
    writeFileSync(path, "");
    expect((await loadError(path)).code).toBe("INVALID_GGUF");
  });

  it("truncated copies of a real model fail with a typed error", async () => {
    const bytes = readFileSync(modelPath("stories260K.gguf"));
    for (const size of [30, 200, 5_000, 20_000, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const path = join(scratch, `truncated-${size}.gguf`);
      writeFileSync(path, bytes.subarray(0, size));
      const error = await loadError(path);
      expect(["INVALID_GGUF", "MODEL_LOAD_FAILED"]).toContain(error.code);
    }
  });

  it("after all that, a good model still loads and generates", async () => {
    const path = join(scratch, "good.gguf");
    copyFileSync(modelPath("stories260K.gguf"), path);
    const model = await LlamaModel.load(path);
    const context = await model.createContext({ nCtx: 128, nThreads: 2 });
    const tokens: number[] = [];
    for await (const t of generateTokens(context, model.createSampler({ temperature: 0 }), model.tokenize("Once"), { maxTokens: 5 })) tokens.push(t);
    expect(tokens.length).toBe(5);
    await context.dispose();
    model.dispose();
  });
});

describe("arguments", () => {
  let model: LlamaModel;
  beforeAll(async () => {
    model = await LlamaModel.load(modelPath("stories260K.gguf"));
  });
  afterAll(() => model.dispose());

  it("wrong types are TypeErrors naming the argument", async () => {
    await expect(LlamaModel.load(42 as unknown as string)).rejects.toThrow(TypeError);
    await expect(LlamaModel.load(modelPath("stories260K.gguf"), { nGpuLayers: "all" as unknown as number })).rejects.toThrow(
      /options\.nGpuLayers must be an integer/,
    );
    await expect(LlamaModel.load(modelPath("stories260K.gguf"), { bogus: 1 } as object)).rejects.toThrow(/options\.bogus is not a known option/);
    expect(() => model.tokenize(null as unknown as string)).toThrow(/text must be a string/);
    expect(() => model.detokenize("abc" as unknown as number[])).toThrow(TypeError);
    expect(() => model.createSampler({ temperature: "hot" as unknown as number })).toThrow(/options\.temperature must be a number/);
    expect(() => model.createSampler({ mirostat: { mode: 3 as 1 } })).toThrow(RangeError);
  });

  it("out-of-range values are RangeErrors naming the argument", async () => {
    await expect(model.createContext({ nCtx: -1 })).rejects.toThrow(/options\.nCtx must be >= 0/);
    await expect(model.createContext({ nBatch: Number.NaN })).rejects.toThrow(/options\.nBatch must be an integer/);
    await expect(model.createContext({ nThreads: 1e9 })).rejects.toThrow(RangeError);
    expect(() => model.createSampler({ topP: 2 })).toThrow(/options\.topP must be <= 1/);
    expect(() => model.detokenize([1, 99999])).toThrow(/tokens\[1\] = 99999 is outside|outside the vocabulary/);
    expect(() => model.tokenBytes(-1)).toThrow(RangeError);
    expect(() => model.createSampler({ logitBias: { 100000: 1 } })).toThrow(RangeError);
  });

  it("an invalid grammar is INVALID_GRAMMAR", () => {
    let error: unknown;
    try {
      model.createSampler({ grammar: "root ::= (" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(LlamaError);
    expect((error as LlamaError).code).toBe("INVALID_GRAMMAR");
  });

  it("bad batches are rejected before reaching llama.cpp", async () => {
    const context = await model.createContext({ nCtx: 64, nBatch: 16, nThreads: 2 });
    await expect(context.decode({ tokens: [] })).rejects.toThrow(/must not be empty/);
    await expect(context.decode({ tokens: new Array(17).fill(1) })).rejects.toThrow(/more than nBatch/);
    await expect(context.decode({ tokens: [1, 2], seqIds: 3 })).rejects.toThrow(/batch\.seqIds must be <= 0/);
    await expect(context.decode({ tokens: [1, 100000] })).rejects.toThrow(/outside the vocabulary/);
    expect(() => context.logits(0)).toThrow(/has no logits/);
    await context.decode({ tokens: [1, 2, 3] });
    expect(() => context.logits(0)).toThrow(/has no logits/);
    expect(context.logits(2).length).toBe(model.nVocab);
    await context.dispose();
  });

  it("quantize rejects an unknown type with the list of valid ones", async () => {
    await expect(quantize(modelPath("stories260K.gguf"), join(scratch, "q.gguf"), { type: "Q9_9" as "Q4_0" })).rejects.toThrow(
      /options\.type must be one of .*Q4_0.*Q8_0/,
    );
  });
});

describe("contexts", () => {
  it("a prompt longer than the context is CONTEXT_FULL, and the context stays usable", async () => {
    const model = await LlamaModel.load(modelPath("stories260K.gguf"));
    const context = await model.createContext({ nCtx: 32, nBatch: 32, nThreads: 2 });
    const long = model.tokenize("Once upon a time there was a very long story that never seemed to end at all. ".repeat(4));
    expect(long.length).toBeGreaterThan(32);
    const error = await generateTokens(context, model.createSampler(), long).next().then(
      () => null,
      (err: unknown) => err,
    );
    expect((error as LlamaError).code).toBe("CONTEXT_FULL");

    // Filling the KV cache through raw decodes hits llama.cpp's own limit (its cache holds 256).
    const raw = await model.createContext({ nCtx: 256, nBatch: 256, nThreads: 2 });
    await raw.decode({ tokens: new Array(256).fill(13), logits: "none" });
    const full = await raw.decode({ tokens: [1], positions: [256] }).then(
      () => null,
      (err: unknown) => err,
    );
    expect((full as LlamaError).code).toBe("CONTEXT_FULL");
    await raw.dispose();

    context.clear();
    const tokens: number[] = [];
    for await (const t of generateTokens(context, model.createSampler({ temperature: 0 }), model.tokenize("Once"), { maxTokens: 3 })) tokens.push(t);
    expect(tokens.length).toBe(3);
    await context.dispose();
    model.dispose();
  });

  it("a vocabulary-only model tokenizes but refuses contexts", async () => {
    const model = await LlamaModel.load(modelPath("llama-2-tiny-random.gguf"), { vocabOnly: true });
    expect(model.tokenize("hello").length).toBeGreaterThan(0);
    await expect(model.createContext()).rejects.toMatchObject({ code: "CONTEXT_CREATE_FAILED" });
    model.dispose();
  });
});
