// KV cache operations, state save/restore, several sequences in one batch, embeddings, counters.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaModel, buildInfo, devices, setLogger, systemInfo, type LlamaContext } from "../../lib/index.js";
import { modelPath, repoRoot } from "../helpers.js";

let model: LlamaModel;
let scratch: string;
beforeAll(async () => {
  model = await LlamaModel.load(modelPath("stories260K.gguf"));
  scratch = mkdtempSync(join(tmpdir(), "llama-napi-state-"));
});
afterAll(() => {
  model.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

function expectClose(a: Float32Array, b: Float32Array, tolerance = 1e-4): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  expect(worst).toBeLessThan(tolerance);
}

describe("KV cache and state", () => {
  let context: LlamaContext;
  const prompt = () => model.tokenize("Once upon a time, there was a little girl");
  beforeAll(async () => {
    context = await model.createContext({ nCtx: 256, nSeqMax: 2, kvUnified: true, nThreads: 2 });
  });
  afterAll(() => context.dispose());

  it("tracks positions per sequence and removes ranges", async () => {
    context.clear();
    const tokens = prompt();
    await context.decode({ tokens });
    expect(context.positionRange(0)).toEqual([0, tokens.length - 1]);
    expect(context.positionRange(1)).toEqual([-1, -1]);
    expect(context.removeTokens(0, 4)).toBe(true);
    expect(context.maxPosition(0)).toBe(3);
    context.copySequence(0, 1);
    expect(context.maxPosition(1)).toBe(3);
    context.keepSequence(1);
    expect(context.maxPosition(0)).toBe(-1);
    expect(context.maxPosition(1)).toBe(3);
  });

  it("re-decoding after removing the tail gives the same logits", async () => {
    context.clear();
    const tokens = prompt();
    await context.decode({ tokens });
    const before = context.logits(tokens.length - 1);
    context.removeTokens(0, tokens.length - 1);
    await context.decode({ tokens: tokens.subarray(tokens.length - 1) });
    expectClose(context.logits(0), before);
  });

  it("a saved state restores the cache: the next token's logits match", async () => {
    context.clear();
    const tokens = prompt();
    await context.decode({ tokens });
    const state = await context.saveState();
    expect(state.length).toBeGreaterThan(1000);
    await context.decode({ tokens: [450] });
    const expected = context.logits(0);

    context.clear();
    await context.loadState(state);
    expect(context.maxPosition(0)).toBe(tokens.length - 1);
    await context.decode({ tokens: [450] });
    expectClose(context.logits(0), expected);

    const file = join(scratch, "state.bin");
    await context.saveStateFile(file, tokens);
    context.clear();
    const restored = await context.loadStateFile(file);
    expect(Array.from(restored)).toEqual(Array.from(tokens));
    await expect(context.loadState(Buffer.from("garbage"))).rejects.toMatchObject({ code: "STATE_FAILED" });
    await expect(context.loadState(state.subarray(0, 40))).rejects.toMatchObject({ code: "STATE_FAILED" });
    await context.loadState(state);
    expect(context.maxPosition(0)).toBe(tokens.length - 1);
    await expect(context.loadStateFile(join(scratch, "missing.bin"))).rejects.toMatchObject({ code: "STATE_FAILED" });
  });

  it("two sequences in one batch get the logits each gets alone", async () => {
    const a = model.tokenize("Once upon a time");
    const b = model.tokenize("The dog ran to the");
    context.clear();
    await context.decode({ tokens: a });
    const aloneA = context.logits(a.length - 1);
    context.clear();
    await context.decode({ tokens: b, seqIds: 1 });
    const aloneB = context.logits(b.length - 1);

    context.clear();
    const tokens = [...a, ...b];
    const seqIds = [...a.map(() => 0), ...b.map(() => 1)];
    const positions = [...a.map((_, i) => i), ...b.map((_, i) => i)];
    const logits = tokens.map((_, i) => i === a.length - 1 || i === tokens.length - 1);
    await context.decode({ tokens, seqIds, positions, logits });
    expectClose(context.logits(a.length - 1), aloneA, 1e-3);
    expectClose(context.logits(tokens.length - 1), aloneB, 1e-3);
  });

  it("shifts positions where the cache allows it", async () => {
    context.clear();
    await context.decode({ tokens: prompt() });
    expect(context.canShift()).toBe(true);
    const max = context.maxPosition(0);
    context.removeTokens(0, 1, 3);
    context.shiftPositions(0, 3, -1, -2);
    expect(context.maxPosition(0)).toBe(max - 2);
  });

  it("counts prompt and generated tokens", async () => {
    context.resetPerf();
    context.clear();
    await context.decode({ tokens: prompt() });
    await context.decode({ tokens: [450] });
    const perf = context.perf();
    expect(perf.promptTokens).toBe(prompt().length);
    expect(perf.evalTokens).toBe(1);
    expect(perf.promptEvalMs).toBeGreaterThan(0);
    expect(perf.evalMs).toBeGreaterThan(0);
  });
});

describe("embeddings", () => {
  it("pooled sequence embeddings and per-token embeddings", async () => {
    const context = await model.createContext({ nCtx: 128, embeddings: true, pooling: "mean", nThreads: 2 });
    const tokens = model.tokenize("hello there");
    await context.decode({ tokens, logits: "all" });
    const pooled = context.sequenceEmbeddings(0);
    expect(pooled.length).toBe(model.info.nEmbd);
    expect(pooled.some((v) => v !== 0)).toBe(true);
    await context.dispose();

    const perToken = await model.createContext({ nCtx: 128, embeddings: true, pooling: "none", nThreads: 2 });
    await perToken.decode({ tokens, logits: "all" });
    expect(perToken.embeddings(0).length).toBe(model.info.nEmbd);
    expect(() => perToken.sequenceEmbeddings(0)).toThrow(/pooling/);
    await perToken.dispose();
  });
});

describe("process-wide facts", () => {
  it("build info names the pinned llama.cpp commit and the backends", () => {
    const pin = JSON.parse(readFileSync(join(repoRoot, "vendor", "llama.cpp.pin.json"), "utf8")) as { commit: string };
    const info = buildInfo();
    if (!process.env.LLAMA_CPP_DIR) expect(info.llamaCommit).toBe(pin.commit);
    expect(info.backends).toContain("CPU");
    expect(info.binaryPath).toMatch(/\.node$/);
    expect(systemInfo()).toMatch(/CPU/);
    expect(devices().some((d) => d.type === "cpu")).toBe(true);
  });

  it("routes llama.cpp's log to a callback, and is silent again with null", async () => {
    const lines: string[] = [];
    setLogger((level, text) => lines.push(`${level}:${text}`), "info");
    const m = await LlamaModel.load(modelPath("stories260K.gguf"));
    m.dispose();
    await new Promise((done) => setTimeout(done, 50));
    setLogger(null);
    expect(lines.join("")).toContain("llama_model_loader");
    const count = lines.length;
    const again = await LlamaModel.load(modelPath("stories260K.gguf"));
    again.dispose();
    await new Promise((done) => setTimeout(done, 50));
    expect(lines.length).toBe(count);
  });
});
