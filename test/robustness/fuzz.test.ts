// Malformed models: files that made llama.cpp abort the process are refused with a LlamaError
// before llama.cpp sees them; the GGUF reader fails every mutated header with INVALID_GGUF and
// never hangs; and a few hundred mutated files loaded through the public API in a child process
// (scripts/fuzz-gguf.mjs, which runs 10,000 and more) crash nothing.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaError, LlamaModel, generateTokens } from "../../lib/index.js";
import { readGgufHeader } from "../../lib/gguf/reader.js";
import { GgmlType, ggmlTypeInfo, type GgufArray, type GgufHeader, type GgufKv } from "../../lib/gguf/types.js";
import { encodeGgufHeader, writeGguf, type GgufTensorSource } from "../../lib/gguf/writer.js";
import { STRATEGIES, loadCorpus, makeCase } from "../../scripts/gguf-mutate.mjs";
import { modelPath, repoRoot } from "../helpers.js";

let scratch: string;
beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "llama-napi-fuzz-test-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function rejection(promise: Promise<unknown>): Promise<LlamaError> {
  const error = await promise.then(
    () => null,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(LlamaError);
  return error as LlamaError;
}

interface Variant {
  kvs: GgufKv[];
  tensors: GgufTensorSource[];
}

/** stories260K rewritten by `edit`: a well-formed GGUF whose content is what llama.cpp trips on. */
async function storiesVariant(name: string, edit: (variant: Variant, header: GgufHeader) => void): Promise<string> {
  const source = modelPath("stories260K.gguf");
  const header = await readGgufHeader(source);
  const data = readFileSync(source);
  const variant: Variant = {
    kvs: header.kvs.map((kv) => ({ ...kv })),
    tensors: header.tensors.map((t) => ({
      name: t.name,
      dims: t.dims,
      type: t.type,
      fill: (chunk: Buffer, byteOffset: number) => {
        chunk.fill(0);
        data.copy(chunk, 0, t.offset + byteOffset, Math.min(t.offset + t.nBytes, t.offset + byteOffset + chunk.length));
      },
    })),
  };
  edit(variant, header);
  const path = join(scratch, `${name}.gguf`);
  await writeGguf(path, variant);
  return path;
}

function setKv(variant: Variant, key: string, type: GgufKv["type"], value: GgufKv["value"]): void {
  const existing = variant.kvs.find((kv) => kv.key === key);
  if (existing) Object.assign(existing, { type, value });
  else variant.kvs.push({ key, type, value });
}

function setTensorType(variant: Variant, name: string, type: number): void {
  const tensor = variant.tensors.find((t) => t.name === name);
  if (tensor === undefined) throw new Error(`no tensor ${name}`);
  tensor.type = type;
}

describe("files that made llama.cpp abort the process are refused before it sees them", () => {
  // Each of these loaded into llama.cpp directly (fuzz-gguf.mjs --target raw) ended the process
  // with SIGABRT or SIGSEGV, at load or at the first decode.
  const hazards: Array<[string, (v: Variant) => void, RegExp]> = [
    ["a non-string architecture (llama.cpp leaks its tensor table on it)", (v) => setKv(v, "general.architecture", "uint32", 5), /general\.architecture is uint32, not a string/],
    ["a block count over LLAMA_MAX_LAYERS", (v) => setKv(v, "llama.block_count", "uint32", 600), /block_count 600 is not between 1 and 512/],
    ["a block count of 0", (v) => setKv(v, "llama.block_count", "uint32", 0), /block_count 0/],
    ["an unknown rope scaling type", (v) => setKv(v, "llama.rope.scaling.type", "string", "bogus"), /unknown llama\.rope\.scaling\.type "bogus"/],
    ["a negative norm epsilon", (v) => setKv(v, "llama.attention.layer_norm_rms_epsilon", "float32", -1), /layer_norm_rms_epsilon is -1/],
    ["a NaN norm epsilon", (v) => setKv(v, "llama.attention.layer_norm_rms_epsilon", "float32", Number.NaN), /layer_norm_rms_epsilon is NaN/],
    ["more experts than LLAMA_MAX_EXPERTS", (v) => setKv(v, "llama.expert_count", "uint32", 2000), /expert_count 2000 exceeds 1024/],
    ["experts used without experts", (v) => setKv(v, "llama.expert_used_count", "uint32", 2), /expert_used_count 2 exceeds the expert count 0/],
    ["an I32 matrix weight", (v) => setTensorType(v, "blk.0.attn_q.weight", GgmlType.I32), /"blk\.0\.attn_q\.weight" has type I32/],
    ["an F16 norm weight", (v) => setTensorType(v, "blk.0.attn_norm.weight", GgmlType.F16), /one-dimensional tensor "blk\.0\.attn_norm\.weight" has type F16/],
    [
      "a vocabulary of 2^31 placeholder tokens",
      (v) => {
        setKv(v, "tokenizer.ggml.model", "string", "no_vocab");
        setKv(v, "llama.vocab_size", "uint32", 2 ** 31);
      },
      /vocab_size 2147483648 exceeds/,
    ],
  ];

  it.each(hazards)("%s is MODEL_LOAD_FAILED", async (name, edit, message) => {
    const path = await storiesVariant(name.replace(/\W+/g, "-"), edit);
    const error = await rejection(LlamaModel.load(path));
    expect(error.code).toBe("MODEL_LOAD_FAILED");
    expect(error.message).toMatch(message);
  });

  it("duplicate tokens are MODEL_LOAD_FAILED, vocabulary-only too (llama.cpp's assertion, caught)", async () => {
    // llama.cpp reads tokens as C strings: "x" and "x\0y" are the same token to it.
    const path = await storiesVariant("duplicate-token", (v) => {
      const tokens = v.kvs.find((kv) => kv.key === "tokenizer.ggml.tokens")!.value as GgufArray;
      tokens.items[300] = `${tokens.items[299] as string}\u0000tail`;
    });
    for (const vocabOnly of [false, true]) {
      const error = await rejection(LlamaModel.load(path, { vocabOnly }));
      expect(error.code).toBe("MODEL_LOAD_FAILED");
      expect(error.message).toMatch(/GGML_ASSERT\(id_to_token.size\(\) == token_to_id.size\(\)\) failed/);
    }
  });

  it("tensor data that cannot be mapped aligned is refused with mmap and loads without it", async () => {
    const path = await storiesVariant("alignment-8", (v) => setKv(v, "general.alignment", "uint32", 8));
    const header = await readGgufHeader(path);
    expect(header.tensors.some((t) => t.offset % 32 !== 0)).toBe(true);
    const error = await rejection(LlamaModel.load(path));
    expect(error.code).toBe("MODEL_LOAD_FAILED");
    expect(error.message).toMatch(/not a multiple of 32.*useMmap: false/);

    const model = await LlamaModel.load(path, { useMmap: false });
    const context = await model.createContext({ nCtx: 64, nThreads: 2 });
    const tokens: number[] = [];
    for await (const t of generateTokens(context, model.createSampler({ temperature: 0 }), model.tokenize("Once upon a time"), { maxTokens: 4 })) {
      tokens.push(t);
    }
    expect(tokens.length).toBe(4);
    await context.dispose();
    model.dispose();
  });

  it("a vocabulary that adds a BOS token it does not have fails tokenize, not the process", async () => {
    // One token left: BOS (id 1) falls outside the vocabulary and llama.cpp drops it, yet still
    // asks for it when adding special tokens.
    const path = await storiesVariant("one-token", (v) => {
      for (const key of ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"]) {
        const array = v.kvs.find((kv) => kv.key === key)!.value as GgufArray;
        array.items.length = 1;
      }
    });
    const model = await LlamaModel.load(path, { vocabOnly: true });
    expect(model.info.bos).toBe(-1);
    const tokenizeError = (addSpecial: boolean) => {
      try {
        model.tokenize("hello", { addSpecial });
      } catch (err) {
        return err as LlamaError;
      }
      throw new Error("tokenize succeeded");
    };
    // llama.cpp asserts on the missing BOS, then throws std::out_of_range on the byte tokens the
    // text falls back to: both used to end the process.
    for (const [addSpecial, reason] of [[true, /special_bos_id != LLAMA_TOKEN_NULL/], [false, /unordered_map::at/]] as const) {
      const error = tokenizeError(addSpecial);
      expect(error).toBeInstanceOf(LlamaError);
      expect(error).toMatchObject({ code: "TOKENIZE_FAILED", message: expect.stringMatching(reason) });
    }
    expect(model.tokenText(0)).toBe("<unk>");
    expect(() => model.detokenize([0])).not.toThrow();
    model.dispose();
  });
});

describe("the GGUF reader on mutated headers", () => {
  it("fails every malformed header with INVALID_GGUF, quickly, with or without keeping long arrays", async () => {
    const corpus = loadCorpus("all", ggmlTypeInfo);
    const cases = 800;
    const outcomes = new Map<string, number>();
    const path = join(scratch, "reader-case.gguf");
    const verdict = (limit?: number) =>
      readGgufHeader(path, { arrayItemLimit: limit }).then(
        () => "ok",
        (err: unknown) => (err instanceof LlamaError ? err.code : `unexpected ${String(err)}`),
      );
    const started = performance.now();
    for (let i = 0; i < cases; i++) {
      const testCase = makeCase(corpus, 7, i);
      writeFileSync(path, testCase.bytes);
      const caseStart = performance.now();
      const outcome = await verdict();
      // A lying count or length must fail fast, never make the reader crawl through the file.
      expect(performance.now() - caseStart, testCase.note).toBeLessThan(2000);
      expect(["ok", "INVALID_GGUF"], `case ${i}: ${testCase.note}`).toContain(outcome);
      // Skipping the items of long arrays (as LlamaModel.load does) checks exactly as much.
      expect(await verdict(16), `case ${i} with arrayItemLimit: ${testCase.note}`).toBe(outcome);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    // Both verdicts occur: the mutations reach past the first check and some files stay valid.
    expect(outcomes.get("INVALID_GGUF")).toBeGreaterThan(cases / 3);
    expect(outcomes.get("ok")).toBeGreaterThan(cases / 20);
    expect(performance.now() - started).toBeLessThan(60_000);
  });

  it("arrayItemLimit reads the same header without keeping long arrays, which cannot be written back", async () => {
    const path = modelPath("llama-2-tiny-random.gguf");
    const full = await readGgufHeader(path);
    const light = await readGgufHeader(path, { arrayItemLimit: 512 });
    const tokens = light.metadata["tokenizer.ggml.tokens"] as GgufArray;
    expect(tokens).toEqual({ itemType: "string", items: [], skippedItems: 32000 });
    expect((full.metadata["tokenizer.ggml.tokens"] as GgufArray).items.length).toBe(32000);
    expect(light.tensors).toEqual(full.tensors);
    expect(light.dataOffset).toBe(full.dataOffset);
    expect(light.metadata["llama.block_count"]).toBe(full.metadata["llama.block_count"]);
    await expect(writeGguf(join(scratch, "skipped.gguf"), { kvs: light.kvs, tensors: [] })).rejects.toThrow(/read without its items/);
  });
});

interface FuzzSummary {
  cases: number;
  crashes: number;
  hangs: number;
  unexpected: number;
  loaded: number;
  used: number;
  strategies: Record<string, number>;
  outcomes: Record<string, number>;
  failures: Array<{ case: number; note: string; problem: string; file: string }>;
}

const runScript = promisify(execFile);

async function fuzzScript(args: string[]): Promise<string> {
  const { stdout } = await runScript(process.execPath, [join(repoRoot, "scripts", "fuzz-gguf.mjs"), ...args], {
    cwd: repoRoot,
    maxBuffer: 64 << 20,
  });
  return stdout.trim().split("\n").at(-1)!;
}

describe("mutated models through the public API, in a child process", () => {
  it("mutations are deterministic from the seed", async () => {
    const [a, b, c] = await Promise.all([
      fuzzScript(["--dry-run", "--corpus", "stories260K", "--cases", "100", "--seed", "5"]),
      fuzzScript(["--dry-run", "--corpus", "stories260K", "--cases", "100", "--seed", "5"]),
      fuzzScript(["--dry-run", "--corpus", "stories260K", "--cases", "100", "--seed", "6"]),
    ]);
    expect(JSON.parse(a).digest).toBe(JSON.parse(b).digest);
    expect(JSON.parse(a).digest).not.toBe(JSON.parse(c).digest);
  });

  it("a few hundred cases: no crash, no hang, every failure a LlamaError", async () => {
    const crashDir = join(scratch, "crashes");
    const line = await fuzzScript(["--cases", "400", "--seed", "1", "--corpus", "models", "--json", "--timeout", "30000", "--crash-dir", crashDir]);
    const summary = JSON.parse(line) as FuzzSummary;
    expect(summary.failures).toEqual([]);
    expect(summary.cases).toBe(400);
    expect([summary.crashes, summary.hangs, summary.unexpected]).toEqual([0, 0, 0]);
    // The run reached every stage: rejected headers, loads, and generation on loaded models.
    expect(summary.outcomes["load INVALID_GGUF"]).toBeGreaterThan(0);
    expect(summary.outcomes["load MODEL_LOAD_FAILED"]).toBeGreaterThan(0);
    expect(summary.used).toBeGreaterThan(0);
    expect(Object.keys(summary.strategies).length).toBeGreaterThan(STRATEGIES.length / 2);
  });

  it("the generated UGM, RWKV and PLaMo-2 seed vocabularies load and tokenize Hello world", async () => {
    const dir = join(scratch, "vocab-seeds");
    await runScript(process.execPath, [join(repoRoot, "scripts", "vocab-seeds.mjs"), "--out", dir]);
    // llama_vocab_type: UGM 4, RWKV 5, PLaMo-2 6.
    for (const [name, vocabType, pieces] of [
      ["t5-ugm", 4, ["▁Hello", "▁world", "</s>"]],
      ["rwkv-world", 5, ["Hello", " world"]],
      ["plamo2", 6, ["Hello", " world"]],
    ] as const) {
      const model = await LlamaModel.load(join(dir, `ggml-vocab-${name}.gguf`), { vocabOnly: true });
      expect(model.info.vocabType, name).toBe(vocabType);
      const tokens = model.tokenize("Hello world");
      expect(Array.from(tokens, (t) => model.tokenText(t)), name).toEqual(pieces);
      expect(model.detokenize(tokens, { removeSpecial: true }), name).toBe("Hello world");
      model.dispose();
    }
  });

  it("RWKV vocabularies that llama.cpp would loop forever on, or tokenize to -1, are typed errors", async () => {
    // Fuzz case 18074 of seed 11: the single-byte token "n" replaced while "na" and "named" remain;
    // llama.cpp's RWKV tokenizer would loop forever on an "n" (the load itself tokenizes "\n").
    const hang = join(scratch, "rwkv-hang.gguf");
    writeFileSync(hang, makeCase(loadCorpus("generated-vocabs", ggmlTypeInfo), 11, 18074).bytes);
    const refused = await LlamaModel.load(hang, { vocabOnly: true }).then(() => null, (err: unknown) => err);
    expect(refused).toBeInstanceOf(LlamaError);
    expect(refused).toMatchObject({ code: "MODEL_LOAD_FAILED", message: expect.stringMatching(/byte 0x6e begins tokens but has no token of its own/) });

    // Only the first 173 bytes have tokens and there is no unknown token: "é" has nothing to become.
    const dir = join(scratch, "rwkv-seed");
    await runScript(process.execPath, [join(repoRoot, "scripts", "vocab-seeds.mjs"), "--out", dir]);
    const seed = await readGgufHeader(join(dir, "ggml-vocab-rwkv-world.gguf"));
    const kvs = seed.kvs
      .filter((kv) => kv.key !== "tokenizer.ggml.eot_token_id")
      .map((kv): GgufKv => (kv.key.startsWith("tokenizer.ggml.token") ? { ...kv, value: { ...(kv.value as GgufArray), items: (kv.value as GgufArray).items.slice(0, 174) } } : kv));
    const partial = join(scratch, "rwkv-partial.gguf");
    writeFileSync(partial, encodeGgufHeader(kvs, []).bytes);
    const model = await LlamaModel.load(partial, { vocabOnly: true });
    expect(Array.from(model.tokenize("hello"), (t) => model.tokenText(t))).toEqual(["h", "e", "l", "l", "o"]);
    expect(() => model.tokenize("héllo")).toThrow(expect.objectContaining({ code: "TOKENIZE_FAILED" }));
    model.dispose();
  });

  it("a few hundred cases over those vocabularies: no crash, no hang", async () => {
    const crashDir = join(scratch, "crashes-vocabs");
    const line = await fuzzScript(["--cases", "300", "--seed", "1", "--corpus", "generated-vocabs", "--json", "--timeout", "10000", "--crash-dir", crashDir]).catch(
      // Exit status 1 on an unexpected error: the summary is still the last line.
      (err: { stdout?: string }) => String(err.stdout ?? "").trim().split("\n").at(-1)!,
    );
    const summary = JSON.parse(line) as FuzzSummary;
    expect(summary.cases).toBe(300);
    expect([summary.crashes, summary.hangs]).toEqual([0, 0]);
    expect(summary.failures).toEqual([]);
    expect(summary.unexpected).toBe(0);
    expect(summary.outcomes["load MODEL_LOAD_FAILED"]).toBeGreaterThan(0);
    expect(summary.used).toBeGreaterThan(0);
  });
});
