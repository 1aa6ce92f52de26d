// The quantization lab: quantize() on llama.cpp's quantizer (types, importance matrices, progress,
// abort), perplexity and model comparison against llama.cpp's own llama-perplexity figures (built
// from the vendored source and run here: quantized kernels differ between CPUs), bench() and its
// reports through the CLI commands.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bench } from "../../lib/tools/bench.js";
import { benchCommand, quantizeCommand, synthCommand } from "../../lib/cli/quant.js";
import { readGgufHeader } from "../../lib/gguf/reader.js";
import { GgmlType, type GgufKv } from "../../lib/gguf/types.js";
import { writeGguf } from "../../lib/gguf/writer.js";
import { readImatrix } from "../../lib/tools/imatrix.js";
import { LlamaError, LlamaModel, generateTokens } from "../../lib/index.js";
import { compareModels, perplexity } from "../../lib/tools/perplexity.js";
import { IMATRIX_TYPES, QUANT_TYPES, quantize, quantTypes } from "../../lib/tools/quantize.js";
import { synthesizeModel, type ModelShape } from "../../lib/tools/synth.js";
import { modelPath, repoRoot } from "../helpers.js";
import { perplexityReference, type PerplexityReference } from "../llama-cpp-tools.js";

const textPath = join(repoRoot, "test", "data", "stories.txt");
const text = readFileSync(textPath, "utf8");
const quality = { nCtx: 128, nThreads: 2 };
let golden: PerplexityReference;

/** 256 wide, so that K-quants and IQ types are what they say (stories260K's 64-wide rows fall back to 32-blocks). */
const WIDE_TINY: ModelShape = {
  name: "synthetic 256-wide",
  nEmbd: 256,
  nLayer: 2,
  nHead: 8,
  nHeadKv: 4,
  nFf: 768,
  contextLength: 2048,
  ropeFreqBase: 10000,
  rmsNormEps: 1e-5,
  tiedEmbeddings: false,
};

let dir: string;
let stories: string;
let storiesQ8: string;
let storiesQ4: string;
let wide: string;
const quantizeProgress: Record<"Q8_0" | "Q4_0", number[]> = { Q8_0: [], Q4_0: [] };

function captureIo(): { io: { stdout: PassThrough; stderr: PassThrough }; stdout: () => string; stderr: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  return { io: { stdout, stderr }, stdout: () => out, stderr: () => err };
}

/** Greedy continuation of a prompt, as token ids. */
async function greedy(path: string, prompt: string, count: number): Promise<number[]> {
  const model = await LlamaModel.load(path);
  const context = await model.createContext({ nCtx: 128, nThreads: 2 });
  const sampler = model.createSampler({ temperature: 0 });
  const out: number[] = [];
  for await (const token of generateTokens(context, sampler, model.tokenize(prompt), { maxTokens: count, stopAtEog: false })) out.push(token);
  sampler.dispose();
  await context.dispose();
  model.dispose();
  return out;
}

beforeAll(async () => {
  stories = modelPath("stories260K.gguf");
  dir = mkdtempSync(join(tmpdir(), "llama-napi-quant-"));
  storiesQ8 = join(dir, "stories260K-Q8_0.gguf");
  storiesQ4 = join(dir, "stories260K-Q4_0.gguf");
  wide = join(dir, "wide-f16.gguf");
  await synthesizeModel({ shape: WIDE_TINY, vocabPath: stories, outPath: wide, type: "f16", seed: 3 });
  // The quantizations every group uses; the first test checks them.
  for (const [type, path] of [["Q8_0", storiesQ8], ["Q4_0", storiesQ4]] as const) {
    await quantize(stories, path, { type, threads: 2, onProgress: (f) => quantizeProgress[type].push(f) });
  }
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("quantize", () => {
  it("quantizes stories260K to Q8_0 and Q4_0, reporting progress up to 1", async () => {
    for (const [type, path] of [["Q8_0", storiesQ8], ["Q4_0", storiesQ4]] as const) {
      const progress = quantizeProgress[type];
      const header = await readGgufHeader(path);
      expect(header.metadata["general.file_type"]).toBe(QUANT_TYPES[type]);
      expect(header.tensors.find((t) => t.name === "blk.0.attn_q.weight")?.typeName).toBe(type);
      // One report per tensor as it starts (the share of tensors done), then 1; all of them arrive
      // before the promise settles.
      const tensors = header.tensors.length;
      expect(progress).toEqual([...Array.from({ length: tensors }, (_, i) => i / tensors), 1]);
    }
  });

  it("the quantized models load and generate; Q8_0 continues like F32", async () => {
    const prompt = "Once upon a time";
    const f32 = await greedy(stories, prompt, 12);
    const q8 = await greedy(storiesQ8, prompt, 12);
    const q4 = await greedy(storiesQ4, prompt, 12);
    expect(q8).toHaveLength(12);
    expect(q4).toHaveLength(12);
    expect(q8.slice(0, 8)).toEqual(f32.slice(0, 8));
    const model = await LlamaModel.load(storiesQ4);
    expect(model.detokenize(q4)).toMatch(/[a-z]+ [a-z]+/);
    model.dispose();
  });

  it("rejects an unknown type with the list of valid ones, and accepts any case", async () => {
    const attempt = quantize(stories, join(dir, "x.gguf"), { type: "Q4_X" });
    await expect(attempt).rejects.toThrow(RangeError);
    await expect(attempt).rejects.toThrow(/Q4_0, Q4_1.*Q4_K_M.*IQ2_XXS|IQ2_XXS.*Q4_K_M/);
    await quantize(stories, join(dir, "lower.gguf"), { type: "q5_k_m", threads: 2 });
    expect((await readGgufHeader(join(dir, "lower.gguf"))).metadata["general.file_type"]).toBe(QUANT_TYPES.Q5_K_M);
  });

  it("lists every type with llama-quantize's descriptions and which need an importance matrix", () => {
    const types = quantTypes();
    expect(types.map((t) => t.name)).toEqual(expect.arrayContaining(["Q4_0", "Q4_K_M", "Q8_0", "IQ2_XXS", "IQ4_XS", "TQ1_0", "F16", "COPY"]));
    expect(types.filter((t) => t.needsImatrix).map((t) => t.name).sort()).toEqual([...IMATRIX_TYPES].sort());
  });

  it("says which types need an importance matrix, and quantizes them with one", async () => {
    for (const type of IMATRIX_TYPES) {
      const attempt = quantize(wide, join(dir, `wide-${type}.gguf`), { type, threads: 2 });
      await expect(attempt, type).rejects.toThrow(new RegExp(`${type} needs an importance matrix`));
      await expect(attempt).rejects.toBeInstanceOf(LlamaError);
    }

    // A uniform importance matrix in llama-imatrix's GGUF format: sums of squares over `count` tokens.
    const header = await readGgufHeader(wide);
    const count = 4;
    const weights = header.tensors.filter((t) => t.dims.length === 2);
    const f32 = (values: Float32Array) => (chunk: Buffer, offset: number) => {
      Buffer.from(values.buffer).copy(chunk, 0, offset, offset + chunk.length);
    };
    const kvs: GgufKv[] = [
      { key: "general.type", type: "string", value: "imatrix" },
      { key: "imatrix.datasets", type: "array", value: { itemType: "string", items: ["stories.txt"] } },
      { key: "imatrix.chunk_count", type: "uint32", value: 3 },
      { key: "imatrix.chunk_size", type: "uint32", value: 512 },
    ];
    const imatrixPath = join(dir, "uniform.imatrix.gguf");
    await writeGguf(imatrixPath, {
      kvs,
      tensors: weights.flatMap((t) => [
        { name: `${t.name}.in_sum2`, dims: [t.dims[0]!, 1], type: GgmlType.F32, fill: f32(new Float32Array(t.dims[0]!).fill(2 * count)) },
        { name: `${t.name}.counts`, dims: [1, 1], type: GgmlType.F32, fill: f32(Float32Array.of(count)) },
      ]),
    });
    const imatrix = await readImatrix(imatrixPath);
    expect(imatrix.entries.size).toBe(weights.length);
    expect(imatrix.entries.get("blk.0.attn_q.weight")?.every((v) => v === 2)).toBe(true);
    expect(imatrix.datasets).toEqual(["stories.txt"]);
    expect(imatrix.chunkCount).toBe(3);

    const output = join(dir, "wide-IQ2_XXS.gguf");
    await quantize(wide, output, { type: "IQ2_XXS", threads: 2, imatrix: imatrixPath });
    const quantized = await readGgufHeader(output);
    expect(quantized.tensors.find((t) => t.name === "blk.0.ffn_up.weight")?.typeName).toBe("IQ2_XXS");
    expect(quantized.metadata["quantize.imatrix.entries_count"]).toBe(weights.length);
    expect(quantized.metadata["quantize.imatrix.dataset"]).toBe("stories.txt");
    expect(quantized.metadata["quantize.imatrix.chunks_count"]).toBe(3);
  });

  it("reads the legacy .dat importance matrix format", async () => {
    const name = Buffer.from("blk.0.ffn_up.weight");
    const dataset = Buffer.from("wiki.train.raw");
    const parts = [
      Int32Array.of(1),
      Int32Array.of(name.length),
      name,
      Int32Array.of(4), // calls: the sums are means times this
      Int32Array.of(3),
      Float32Array.of(4, 8, 12),
      Int32Array.of(7),
      Int32Array.of(dataset.length),
      dataset,
    ].map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    const path = join(dir, "legacy.dat");
    writeFileSync(path, Buffer.concat(parts));
    const imatrix = await readImatrix(path);
    expect([...imatrix.entries.get("blk.0.ffn_up.weight")!]).toEqual([1, 2, 3]);
    expect(imatrix.chunkCount).toBe(7);
    expect(imatrix.datasets).toEqual(["wiki.train.raw"]);
  });

  it("aborts between tensors and leaves no output", async () => {
    const controller = new AbortController();
    const output = join(dir, "aborted.gguf");
    const attempt = quantize(wide, output, {
      type: "Q4_K_M",
      threads: 2,
      signal: controller.signal,
      onProgress: (fraction) => {
        if (fraction > 0.2) controller.abort();
      },
    });
    await expect(attempt).rejects.toMatchObject({ code: "ABORTED" });
    expect(existsSync(output)).toBe(false);
  });
});

describe("perplexity and model comparison", () => {
  beforeAll(() => {
    golden = perplexityReference(textPath, quality.nCtx);
  });

  it("perplexity of stories260K equals llama-perplexity's to 4 significant digits", async () => {
    const result = await perplexity(stories, text, quality);
    expect(result.nChunks).toBe(golden.chunks);
    expect(result.nScored).toBe(golden.chunks * (golden.nCtx - golden.nCtx / 2 - 1));
    // llama-perplexity prints 4 decimals (±5e-5). Not toPrecision(4) on both: a value that lies
    // within that rounding of a 4th-digit boundary (where it lies moves with the CPU's kernels)
    // would round two ways.
    expect(Math.abs(result.perplexity - golden.perplexity)).toBeLessThan(1e-4);
    expect(result.uncertainty).toBeCloseTo(golden.uncertainty, 3);
  });

  it("a model against itself: KL divergence 0, same top token 100 %", async () => {
    const result = await compareModels(stories, stories, text, quality);
    expect(result.klDivergence.value).toBe(0);
    expect(result.klDivergence.distribution.max).toBe(0);
    expect(result.sameTop.value).toBe(1);
    expect(result.deltaP.rms.value).toBe(0);
    expect(result.candidate.perplexity).toBe(result.base.perplexity);
  });

  it("Q8_0 and Q4_0 against F32 agree with llama-perplexity --kl-divergence", async () => {
    for (const [type, path] of [["Q8_0", storiesQ8], ["Q4_0", storiesQ4]] as const) {
      const expected = golden.divergence[type];
      const result = await compareModels(stories, path, text, quality);
      expect(result.klDivergence.value, type).toBeGreaterThan(0);
      // llama-perplexity keeps the base's log-probabilities in 16 bits and prints 6 decimals: 1 % is ample.
      expect(Math.abs(result.klDivergence.value / expected.meanKld - 1)).toBeLessThan(0.01);
      expect(Math.abs(result.klDivergence.distribution.median / expected.medianKld - 1)).toBeLessThan(0.01);
      expect(Math.abs(result.klDivergence.distribution.p99 / expected.p99Kld - 1)).toBeLessThan(0.01);
      // Printed to 6 decimals (compared within a tolerance, not rounded, as above).
      expect(Math.abs(result.candidate.perplexity - expected.perplexity)).toBeLessThan(1e-5);
      // The same count: llama-perplexity's 16-bit base moves a log-probability by at most 16/65535/2
      // (1.2e-4), a gap by twice that, and the base's closest top two on this text are 5.9e-4 apart
      // (CPU kernels move that by ~1e-5), so its top tokens are the exact ones on every machine.
      expect(result.sameTop.value).toBeCloseTo(expected.sameTop, 4);
      expect(result.deltaP.rms.value).toBeCloseTo(expected.rmsDeltaP, 4);
    }
  });

  it("Q4_0 diverges more than zero and less than a 2-bit type", async () => {
    // stories260K's rows are 64 wide: Q2_K (256-blocks) falls back to Q4_0 for every tensor there,
    // so its 2-bit comparison is Q2_0 (64-blocks); on a 256-wide model Q2_K is real 2-bit.
    const storiesQ2 = join(dir, "stories260K-Q2_0.gguf");
    await quantize(stories, storiesQ2, { type: "Q2_0", threads: 2 });
    const [q4, q2] = [await compareModels(stories, storiesQ4, text, quality), await compareModels(stories, storiesQ2, text, quality)];
    expect(q4.klDivergence.value).toBeGreaterThan(0);
    expect(q4.klDivergence.value).toBeLessThan(q2.klDivergence.value);

    const wideQ4 = join(dir, "wide-Q4_0.gguf");
    const wideQ2 = join(dir, "wide-Q2_K.gguf");
    await quantize(wide, wideQ4, { type: "Q4_0", threads: 2 });
    await quantize(wide, wideQ2, { type: "Q2_K", threads: 2 });
    expect((await readGgufHeader(wideQ2)).tensors.find((t) => t.name === "blk.0.ffn_gate.weight")?.typeName).toBe("Q2_K");
    const options = { ...quality, nChunks: 4 };
    const wide4 = await compareModels(wide, wideQ4, text, options);
    const wide2 = await compareModels(wide, wideQ2, text, options);
    expect(wide4.klDivergence.value).toBeGreaterThan(0);
    expect(wide4.klDivergence.value).toBeLessThan(wide2.klDivergence.value);
  });

  it("refuses a text shorter than two chunks", async () => {
    await expect(perplexity(stories, "Once upon a time.", quality)).rejects.toThrow(/needs at least 256/);
  });
});

describe("commands", () => {
  it("quantize: writes the file, exit code 2 and the type list for an unknown type", async () => {
    const good = captureIo();
    expect(await quantizeCommand([stories, join(dir, "cli-q8.gguf"), "Q8_0", "--threads", "2"], good.io)).toBe(0);
    expect(good.stdout()).toMatch(/cli-q8\.gguf: Q8_0/);
    // Not a terminal: plain progress lines.
    expect(good.stderr()).toMatch(/quantize Q8_0: 100%\n/);
    expect(good.stderr()).not.toMatch(/\r/);

    // A terminal: one bar, redrawn in place.
    const tty = captureIo();
    Object.assign(tty.io.stderr, { isTTY: true, columns: 80 });
    expect(await quantizeCommand([stories, join(dir, "cli-q4.gguf"), "Q4_0", "--threads", "2"], tty.io)).toBe(0);
    const redraws = tty.stderr().split("\r\x1b[2K");
    expect(redraws[0]).toBe("");
    expect(redraws[1]).toMatch(/^quantize Q4_0 \[\.+\] 0%$/);
    expect(redraws.at(-1)).toMatch(/^quantize Q4_0 \[#+\] 100%\n$/);
    expect(tty.stderr().split("\n")).toHaveLength(2);

    const bad = captureIo();
    expect(await quantizeCommand([stories, join(dir, "cli-bad.gguf"), "Q3_X"], bad.io)).toBe(2);
    expect(bad.stderr()).toMatch(/TYPE must be one of .*Q4_K_M/);

    const missing = captureIo();
    expect(await quantizeCommand([join(dir, "nope.gguf"), join(dir, "cli-none.gguf"), "Q8_0"], missing.io)).toBe(1);
    expect(missing.stderr()).toMatch(/model file not found/);
  });

  it("bench: quantizes what is missing, prints the table and writes every report format", async () => {
    const quantDir = mkdtempSync(join(dir, "bench-"));
    const outputs = ["report.html", "report.md", "report.csv", "report.json", "chart.svg"].map((f) => join(quantDir, f));
    const run = captureIo();
    const argv = ["--base", stories, "--types", "Q8_0,Q4_0", "--quant-dir", quantDir, "--text", textPath, "--ctx", "128", "--chunks", "4"];
    argv.push("-p", "64", "-n", "8", "-r", "2", "-t", "2", ...outputs.flatMap((o) => ["--out", o]));
    expect(await benchCommand(argv, run.io), run.stderr()).toBe(0);

    const table = run.stdout();
    const header = table.split("\n")[0]!.split("|").map((cell) => cell.trim()).filter(Boolean);
    expect(header).toEqual(["model", "type", "size", "BPW", "params", "pp64 t/s", "tg8 t/s", "TTFT ms", "peak mem", "PPL", "mean KLD", "KLD p99", "mean Δp", "RMS Δp", "same top"]);
    expect(table).toMatch(/stories260K-Q4_0\.gguf \| Q4_0/);
    expect(existsSync(join(quantDir, "stories260K-Q8_0.gguf"))).toBe(true);

    const json = JSON.parse(readFileSync(outputs[3]!, "utf8")) as {
      build_commit: string;
      models: Array<{ quant_type: string; is_base: boolean; file_size: number; peak_memory_bytes: number; tests: Array<{ n_prompt: number; n_gen: number; avg_ts: number; samples_ns: number[] }>; perplexity?: { perplexity: number }; divergence?: { klDivergence: { value: number }; sameTop: { value: number } } }>;
    };
    expect(json.models.map((m) => m.quant_type)).toEqual(["F32", "Q8_0", "Q4_0"]);
    for (const m of json.models) {
      expect(m.peak_memory_bytes).toBeGreaterThan(m.file_size);
      expect(m.tests.map((t) => [t.n_prompt, t.n_gen])).toEqual([[64, 0], [0, 8]]);
      expect(m.tests.every((t) => t.avg_ts > 0 && t.samples_ns.length === 2)).toBe(true);
      expect(m.perplexity?.perplexity).toBeGreaterThan(1);
    }
    expect(json.models[0]!.divergence).toBeUndefined();
    expect(json.models[1]!.divergence!.klDivergence.value).toBeLessThan(json.models[2]!.divergence!.klDivergence.value);

    const csv = readFileSync(outputs[2]!, "utf8").trim().split("\n");
    expect(csv[0]).toMatch(/^build_commit,cpu_info,backends,model_filename,model_type,model_size,model_n_params,n_batch,n_ubatch,n_threads,n_prompt,n_gen,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts,/);
    expect(csv).toHaveLength(1 + 3 * 2);
    const html = readFileSync(outputs[0]!, "utf8");
    expect(html).toMatch(/^<!doctype html>/);
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).not.toMatch(/<script|<link|src=/);
    expect(readFileSync(outputs[1]!, "utf8")).toContain("| stories260K-Q8_0.gguf | Q8_0 |");
    expect(readFileSync(outputs[4]!, "utf8")).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });

  it("bench --draft: a speculative column, greedy generation with the draft against without it", async () => {
    const run = captureIo();
    expect(await benchCommand([stories, "--draft", stories, "--draft-max", "4", "-p", "16", "-n", "48", "-r", "1", "-t", "2"], run.io), run.stderr()).toBe(0);
    const table = run.stdout();
    expect(table.split("\n")[0]).toMatch(/\| +tg48 drafted t\/s \|/);
    // The model drafting for itself: every draft is accepted.
    expect(table).toMatch(/\| +[\d.]+ \([\d.]+x, 100% accepted\) \|/);
    const report = await bench({ models: [stories], draft: { type: "ngram", nDraft: 8 }, nPrompt: 16, nGen: 64, repetitions: 2, nThreads: 2 });
    const s = report.models[0]!.speculative!;
    expect(s.plainTps).toHaveLength(2);
    expect(s.draftTps.every((t) => t > 0)).toBe(true);
    expect(s.draftAccepted).toBeLessThanOrEqual(s.draftTokens);
    expect((await benchCommand([stories, "--draft-max", "4"], captureIo().io))).toBe(2);
  });

  it("bench: an abort stops the measuring child", async () => {
    const controller = new AbortController();
    let step = "";
    const attempt = bench({
      models: [stories],
      threads: 2,
      signal: controller.signal,
      onProgress: (event) => {
        if (event.phase === "speed" && event.progress.step === "pp") {
          step = event.progress.step;
          controller.abort();
        }
      },
    });
    await expect(attempt).rejects.toMatchObject({ code: "ABORTED" });
    expect(step).toBe("pp");
  });

  it("synth: writes a model of the shape asked for; bad usage is exit code 2", async () => {
    const out = join(dir, "synth-tiny.gguf");
    const run = captureIo();
    expect(await synthCommand(["--shape", "tiny", "--vocab", stories, "--seed", "1", out], run.io)).toBe(0);
    expect(run.stdout()).toMatch(/synthetic tiny/);
    const header = await readGgufHeader(out);
    expect(header.metadata["llama.embedding_length"]).toBe(256);

    const bad = captureIo();
    expect(await synthCommand(["--shape", "llama9-1t", "--vocab", stories, out], bad.io)).toBe(2);
    expect(bad.stderr()).toMatch(/--shape must be one of tiny, llama3-1b/);
  });
});
