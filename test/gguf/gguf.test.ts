// GGUF reader, writer and model synthesizer: real files from llama.cpp and the shared test models,
// round trips through the writer, and malformed headers that must fail fast with INVALID_GGUF.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaError } from "../../lib/errors.js";
import { readGgufHeader, type ReadGgufHeaderOptions } from "../../lib/gguf/reader.js";
import { GGML_TYPES, GgmlType, ggmlTypeInfo, type GgufArray, type GgufHeader, type GgufKv } from "../../lib/gguf/types.js";
import { encodeGgufHeader, writeGguf, type GgufTensorSource } from "../../lib/gguf/writer.js";
import { float32ToFloat16, MODEL_SHAPES, synthesizeModel, type ModelShape } from "../../lib/tools/synth.js";
import { llamaCppDir, modelPath } from "../helpers.js";

const vocabFolder = join(llamaCppDir(), "models");
const vocabFiles = readdirSync(vocabFolder)
  .filter((f) => /^ggml-vocab-.*\.gguf$/.test(f))
  .sort();

let scratchDir: string;
beforeAll(async () => {
  scratchDir = await mkdtemp(join(tmpdir(), "llama-napi-gguf-"));
});
afterAll(async () => {
  await rm(scratchDir, { recursive: true, force: true });
});

function arrayItems(header: GgufHeader, key: string): unknown[] {
  const value = header.metadata[key] as GgufArray | undefined;
  expect(value, `metadata ${key}`).toBeDefined();
  return value!.items;
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, size) => product * size, 1);
}

/** Every tensor lies inside the file, packed in order and aligned, with the size its type implies. */
function expectConsistentLayout(header: GgufHeader): void {
  let expectedOffset = header.dataOffset;
  for (const tensor of header.tensors) {
    const info = ggmlTypeInfo(tensor.type)!;
    expect(tensor.typeName).toBe(info.name);
    expect(tensor.nBytes).toBe((elementCount(tensor.dims) / info.blockSize) * info.typeSize);
    expect(tensor.offset % header.alignment).toBe(0);
    expect(tensor.offset).toBe(expectedOffset);
    expect(tensor.offset + tensor.nBytes).toBeLessThanOrEqual(header.fileSize);
    expectedOffset = Math.ceil((tensor.offset + tensor.nBytes) / header.alignment) * header.alignment;
  }
}

/** Tensor names and shapes of llama.cpp's LLM_ARCH_LLAMA, ne[0] first. */
function llamaLayout(nEmbd: number, nLayer: number, nEmbdKv: number, nFf: number, nVocab: number, tied: boolean) {
  const layout = new Map<string, number[]>([
    ["token_embd.weight", [nEmbd, nVocab]],
    ["output_norm.weight", [nEmbd]],
  ]);
  if (!tied) layout.set("output.weight", [nEmbd, nVocab]);
  for (let i = 0; i < nLayer; i++) {
    layout.set(`blk.${i}.attn_norm.weight`, [nEmbd]);
    layout.set(`blk.${i}.attn_q.weight`, [nEmbd, nEmbd]);
    layout.set(`blk.${i}.attn_k.weight`, [nEmbd, nEmbdKv]);
    layout.set(`blk.${i}.attn_v.weight`, [nEmbd, nEmbdKv]);
    layout.set(`blk.${i}.attn_output.weight`, [nEmbd, nEmbd]);
    layout.set(`blk.${i}.ffn_norm.weight`, [nEmbd]);
    layout.set(`blk.${i}.ffn_gate.weight`, [nEmbd, nFf]);
    layout.set(`blk.${i}.ffn_up.weight`, [nEmbd, nFf]);
    layout.set(`blk.${i}.ffn_down.weight`, [nFf, nEmbd]);
  }
  return layout;
}

function expectLayout(header: GgufHeader, layout: Map<string, number[]>): void {
  expect(new Map(header.tensors.map((t) => [t.name, t.dims]))).toEqual(layout);
}

async function readTensorBytes(path: string, offset: number, length: number): Promise<Buffer> {
  const file = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    await file.read(buffer, 0, length, offset);
    return buffer;
  } finally {
    await file.close();
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

describe("readGgufHeader on the shared test models", () => {
  it("reads stories260K.gguf", async () => {
    const path = modelPath("stories260K.gguf");
    const header = await readGgufHeader(path);
    expect(header.version).toBe(3);
    expect(header.alignment).toBe(32);
    expect(header.fileSize).toBe((await stat(path)).size);
    expect(header.metadata["general.architecture"]).toBe("llama");
    expect(header.metadata["llama.embedding_length"]).toBe(64);
    expect(header.metadata["llama.block_count"]).toBe(5);
    expect(header.metadata["tokenizer.ggml.bos_token_id"]).toBe(1);
    expect(header.metadata["tokenizer.ggml.eos_token_id"]).toBe(2);
    expect(arrayItems(header, "tokenizer.ggml.tokens")).toHaveLength(512);
    expect(arrayItems(header, "tokenizer.ggml.scores")).toHaveLength(512);
    expect(header.tensors).toHaveLength(5 * 9 + 3);
    const nFf = header.metadata["llama.feed_forward_length"] as number;
    expectLayout(header, llamaLayout(64, 5, 32, nFf, 512, false));
    expect(header.tensors.every((t) => t.typeName === "F32")).toBe(true);
    expectConsistentLayout(header);
  });

  it("reads llama-2-tiny-random.gguf", async () => {
    const path = modelPath("llama-2-tiny-random.gguf");
    const header = await readGgufHeader(path);
    expect(header.metadata["general.architecture"]).toBe("llama");
    const tokens = arrayItems(header, "tokenizer.ggml.tokens");
    expect(tokens).toHaveLength(32000);
    expect(tokens.slice(0, 3)).toEqual(["<unk>", "<s>", "</s>"]);
    expect(header.tensors).toHaveLength(12);
    const nFf = header.metadata["llama.feed_forward_length"] as number;
    expectLayout(header, llamaLayout(8, 1, 8, nFf, 32000, false));
    expect(new Set(header.tensors.map((t) => t.typeName))).toEqual(new Set(["F16", "F32"]));
    expectConsistentLayout(header);
  });

  it("keeps keys from the file off the object prototype", async () => {
    const header = await readGgufHeader(modelPath("stories260K.gguf"));
    expect(Object.getPrototypeOf(header.metadata)).toBeNull();
    expect(header.kvs.map((kv) => kv.key)).toEqual(Object.keys(header.metadata));
  });
});

describe("readGgufHeader on llama.cpp's vocabulary files", () => {
  it("finds the vocabulary files", () => {
    expect(vocabFiles.length).toBeGreaterThanOrEqual(10);
    expect(vocabFiles).toContain("ggml-vocab-llama-bpe.gguf");
  });

  it.each(vocabFiles)("reads %s", async (file) => {
    const header = await readGgufHeader(join(vocabFolder, file));
    expect(header.tensors).toEqual([]);
    expect(header.dataOffset).toBe(header.fileSize);
    expect(typeof header.metadata["general.architecture"]).toBe("string");
    expect(typeof header.metadata["tokenizer.ggml.model"]).toBe("string");
    const tokens = arrayItems(header, "tokenizer.ggml.tokens");
    expect(tokens.length).toBeGreaterThan(1000);
    expect(tokens.every((t) => typeof t === "string")).toBe(true);
  });

  it("reports the known vocabulary sizes", async () => {
    const sizes: Record<string, number> = {
      "ggml-vocab-llama-bpe.gguf": 128256,
      "ggml-vocab-llama-spm.gguf": 32000,
      "ggml-vocab-gpt-2.gguf": 50257,
      "ggml-vocab-qwen2.gguf": 151936,
    };
    for (const [file, size] of Object.entries(sizes)) {
      const header = await readGgufHeader(join(vocabFolder, file));
      expect(arrayItems(header, "tokenizer.ggml.tokens"), file).toHaveLength(size);
    }
  });
});

describe("ggml type table", () => {
  it("matches ggml.h, ggml.c and ggml-common.h of the pinned llama.cpp", () => {
    const ggmlH = readFileSync(join(llamaCppDir(), "ggml", "include", "ggml.h"), "utf8");
    const enumBody = ggmlH.slice(ggmlH.indexOf("enum ggml_type {"), ggmlH.indexOf("GGML_TYPE_COUNT"));
    const declared = [...enumBody.matchAll(/^\s*GGML_TYPE_(\w+)\s*=\s*(\d+),/gm)].map((m) => [m[1], Number(m[2])]);
    expect(GGML_TYPES.map((t) => [t.name, t.id])).toEqual(declared);

    // Block and type sizes as ggml.c's type_traits declare them, evaluated from ggml-common.h.
    const ggmlC = readFileSync(join(llamaCppDir(), "ggml", "src", "ggml.c"), "utf8");
    const tableStart = ggmlC.indexOf("{", ggmlC.indexOf("type_traits[GGML_TYPE_COUNT] =")) + 1;
    const traitsTable = ggmlC.slice(tableStart, ggmlC.indexOf("\n};", tableStart));
    const common = readFileSync(join(llamaCppDir(), "ggml", "src", "ggml-common.h"), "utf8");
    const defines = new Map(
      [...common.matchAll(/^#define (\w+) +(.+)$/gm)].map((m) => [m[1]!, m[2]!.replace(/\/\/.*/, "").trim()]),
    );
    const blockSizeofs = new Map(
      [...common.matchAll(/static_assert\(sizeof\((block_\w+)\) == ([^,]+), "/g)].map((m) => [m[1]!, m[2]!]),
    );
    const primitiveSizes: Record<string, number> = {
      float: 4, double: 8, ggml_half: 2, ggml_fp16_t: 2, ggml_bf16_t: 2,
      int8_t: 1, uint8_t: 1, int16_t: 2, uint16_t: 2, int32_t: 4, uint32_t: 4, int64_t: 8,
    };
    const evaluate = (expr: string): number => {
      const js = expr
        .replace(/sizeof\((\w+)\)/g, (_, t: string) =>
          String(primitiveSizes[t] ?? evaluate(blockSizeofs.get(t) ?? `missing_${t}`)),
        )
        .replace(/\b[A-Za-z_]\w*\b/g, (name) => `(${evaluate(defines.get(name) ?? `missing_${name}`)})`);
      if (/missing_/.test(js)) throw new Error(`cannot evaluate ${expr}`);
      return Function(`return ${js}`)() as number;
    };
    const traits = [
      ...traitsTable.matchAll(/\[GGML_TYPE_(\w+)\]\s*=\s*\{[^}]*?\.blck_size\s*=\s*([^,]+),[^}]*?\.type_size\s*=\s*([^,]+),/g),
    ].map((m) => [m[1], evaluate(m[2]!), evaluate(m[3]!)]);
    expect(traits).toHaveLength(GGML_TYPES.length);
    const byName = new Map(traits.map((t) => [t[0], t]));
    for (const t of GGML_TYPES) expect(byName.get(t.name)).toEqual([t.name, t.blockSize, t.typeSize]);
  });
});

describe("float32ToFloat16", () => {
  it("rounds every half-precision boundary to nearest even", () => {
    const f32 = new Float32Array(1);
    const f32Bits = new Uint32Array(f32.buffer);
    const nextFloat = (x: number, direction: 1 | -1) => {
      f32[0] = x;
      f32Bits[0] = f32Bits[0]! + direction; // valid for positive finite x
      return f32[0]!;
    };
    const inputs: number[] = [];
    const expected: number[] = [];
    const add = (x: number, h: number) => {
      inputs.push(x, -x);
      expected.push(h, h | 0x8000);
    };
    for (let h = 0; h <= 0x7bff; h++) {
      const value = halfToFloat(h);
      add(value, h);
      const upper = h === 0x7bff ? 65536 : halfToFloat(h + 1);
      const midpoint = (value + upper) / 2;
      const roundedUp = h === 0x7bff ? 0x7c00 : h + 1;
      add(midpoint, h % 2 === 0 ? h : roundedUp);
      add(nextFloat(midpoint, 1), roundedUp);
      add(nextFloat(midpoint, -1), h);
    }
    add(Infinity, 0x7c00);
    add(1e30, 0x7c00);
    add(2 ** -140, 0); // float32 subnormal
    const src = Float32Array.from(inputs);
    const dst = new Uint16Array(src.length);
    float32ToFloat16(src, dst);
    const mismatch = [...dst].findIndex((h, i) => h !== expected[i]);
    expect(mismatch, `input ${inputs[mismatch]}`).toBe(-1);

    const nan = new Uint16Array(1);
    float32ToFloat16(Float32Array.of(NaN), nan);
    expect(nan[0]! & 0x7fff).toBe(0x7e00);
  });
});

describe("writeGguf", () => {
  const allValueKinds: GgufKv[] = [
    { key: "test.u8", type: "uint8", value: 255 },
    { key: "test.i8", type: "int8", value: -128 },
    { key: "test.u16", type: "uint16", value: 65535 },
    { key: "test.i16", type: "int16", value: -32768 },
    { key: "test.u32", type: "uint32", value: 4294967295 },
    { key: "test.i32", type: "int32", value: -2147483648 },
    { key: "test.u64", type: "uint64", value: 18446744073709551615n },
    { key: "test.i64", type: "int64", value: -9223372036854775808n },
    { key: "test.f32", type: "float32", value: 0.5 },
    { key: "test.f64", type: "float64", value: Math.PI },
    { key: "test.bool", type: "bool", value: true },
    { key: "test.string", type: "string", value: "héllo ✓ 🦙" },
    { key: "test.empty_string", type: "string", value: "" },
    { key: "test.floats", type: "array", value: { itemType: "float32", items: [1, -2.5, 0] } },
    { key: "test.empty", type: "array", value: { itemType: "int32", items: [] } },
    { key: "test.bools", type: "array", value: { itemType: "bool", items: [true, false] } },
    { key: "test.u64s", type: "array", value: { itemType: "uint64", items: [0n, 1n << 60n] } },
    {
      key: "test.nested",
      type: "array",
      value: {
        itemType: "array",
        items: [
          { itemType: "string", items: ["a", "bc"] },
          { itemType: "int16", items: [-1, 2, 3] },
        ],
      },
    },
  ];

  it("round-trips every value type, a custom alignment and chunked tensor data", async () => {
    const path = join(scratchDir, "all-types.gguf");
    const pattern = (byteOffset: number) => (byteOffset * 7 + 3) & 0xff;
    const tensor = (name: string, dims: number[], type: number): GgufTensorSource => ({
      name,
      dims,
      type,
      fill(chunk, byteOffset) {
        for (let i = 0; i < chunk.length; i++) chunk[i] = pattern(byteOffset + i);
      },
    });
    const kvs: GgufKv[] = [{ key: "general.alignment", type: "uint32", value: 64 }, ...allValueKinds];
    const tensors = [
      tensor("a", [3, 5], GgmlType.F32),
      tensor("q", [64, 3], GgmlType.Q4_0),
      tensor("k", [256], GgmlType.Q6_K),
      tensor("empty", [0, 4], GgmlType.F16),
      tensor("last", [7], GgmlType.I8),
    ];
    // 40-byte chunks split every tensor into many fill calls (rounded to whole blocks).
    const written = await writeGguf(path, { kvs, tensors }, { chunkBytes: 40 });
    const header = await readGgufHeader(path);
    expect(header.kvs).toEqual(kvs);
    expect(header.alignment).toBe(64);
    expect(header.fileSize).toBe(written.fileSize);
    expect(header.dataOffset).toBe(written.dataOffset);
    expect(header.tensors.map((t) => [t.name, t.dims, t.typeName, t.nBytes])).toEqual([
      ["a", [3, 5], "F32", 60],
      ["q", [64, 3], "Q4_0", 6 * 18],
      ["k", [256], "Q6_K", 210],
      ["empty", [0, 4], "F16", 0],
      ["last", [7], "I8", 7],
    ]);
    expect(header.tensors.map((t) => t.offset)).toEqual(written.tensorOffsets);
    expectConsistentLayout(header);
    const bytes = await readFile(path);
    expect(bytes.length).toBe(written.fileSize);
    for (const t of header.tensors) {
      const expected = Buffer.from(Array.from({ length: t.nBytes }, (_, i) => pattern(i)));
      expect(bytes.subarray(t.offset, t.offset + t.nBytes).equals(expected), t.name).toBe(true);
    }
  });

  it("rejects values that do not fit their declared types", () => {
    const bad: Array<[GgufKv, ErrorConstructor]> = [
      [{ key: "k", type: "uint8", value: 256 }, RangeError],
      [{ key: "k", type: "int32", value: 1.5 }, TypeError],
      [{ key: "k", type: "uint64", value: -1n }, RangeError],
      [{ key: "k", type: "string", value: 3 }, TypeError],
      [{ key: "k", type: "bool", value: 1 }, TypeError],
      [{ key: "k", type: "array", value: "x" }, TypeError],
      [{ key: "k", type: "array", value: { itemType: "string", items: ["a", 1] } }, TypeError],
      [{ key: "k", type: "nope" as never, value: 1 }, TypeError],
      [{ key: "general.alignment", type: "uint32", value: 48 }, RangeError],
    ];
    for (const [kv, errorType] of bad) expect(() => encodeGgufHeader([kv], []), kv.key).toThrow(errorType);
    expect(() => encodeGgufHeader([allValueKinds[0]!, allValueKinds[0]!], [])).toThrow(/duplicate key/);
    const f32 = GgmlType.F32;
    expect(() => encodeGgufHeader([], [{ name: "x".repeat(64), dims: [1], type: f32 }])).toThrow(/longer/);
    expect(() => encodeGgufHeader([], [{ name: "t", dims: [33], type: GgmlType.Q4_0 }])).toThrow(/block size/);
    expect(() => encodeGgufHeader([], [{ name: "t", dims: [1, 1, 1, 1, 1], type: f32 }])).toThrow(/dimensions/);
    expect(() => encodeGgufHeader([], [{ name: "t", dims: [1], type: 4 }])).toThrow(/unknown ggml type/);
  });

  it("leaves no file behind when a fill callback fails", async () => {
    const path = join(scratchDir, "failed.gguf");
    const failing: GgufTensorSource = {
      name: "t",
      dims: [1024],
      type: GgmlType.F32,
      fill() {
        throw new Error("generator failed");
      },
    };
    await expect(writeGguf(path, { kvs: [], tensors: [failing] })).rejects.toThrow("generator failed");
    expect(readdirSync(scratchDir).filter((f) => f.startsWith("failed.gguf"))).toEqual([]);
  });
});

describe("synthesizeModel", () => {
  it("writes the tiny shape as F16 with the Llama 3 tokenizer", async () => {
    const vocabPath = join(vocabFolder, "ggml-vocab-llama-bpe.gguf");
    const outPath = join(scratchDir, "tiny-f16.gguf");
    const result = await synthesizeModel({ shape: "tiny", vocabPath, outPath, type: "f16", seed: 7 });
    const shape = MODEL_SHAPES.tiny;
    const vocab = await readGgufHeader(vocabPath);
    const header = await readGgufHeader(outPath);

    expect(result.nVocab).toBe(128256);
    expect(result.fileSize).toBe((await stat(outPath)).size);
    expect(header.fileSize).toBe(result.fileSize);
    expect(header.kvs.filter((kv) => kv.key.startsWith("tokenizer."))).toEqual(
      vocab.kvs.filter((kv) => kv.key.startsWith("tokenizer.")),
    );
    expect(header.metadata["general.architecture"]).toBe("llama");
    expect(header.metadata["general.file_type"]).toBe(1);
    const u32Keys = {
      "llama.vocab_size": 128256,
      "llama.context_length": shape.contextLength,
      "llama.embedding_length": 256,
      "llama.block_count": 4,
      "llama.feed_forward_length": 768,
      "llama.attention.head_count": 8,
      "llama.attention.head_count_kv": 4,
      "llama.rope.dimension_count": 32,
    };
    for (const [key, value] of Object.entries(u32Keys)) {
      expect(header.kvs.find((kv) => kv.key === key), key).toEqual({ key, type: "uint32", value });
    }
    expect(header.kvs.find((kv) => kv.key === "llama.rope.freq_base")).toEqual({
      key: "llama.rope.freq_base",
      type: "float32",
      value: 500000,
    });
    expect(header.metadata["llama.attention.layer_norm_rms_epsilon"]).toBeCloseTo(1e-5, 10);

    expectLayout(header, llamaLayout(256, 4, 128, 768, 128256, false));
    expect(result.tensorCount).toBe(header.tensors.length);
    expect(result.nParams).toBe(header.tensors.reduce((sum, t) => sum + elementCount(t.dims), 0));
    for (const t of header.tensors) expect(t.typeName, t.name).toBe(t.dims.length === 1 ? "F32" : "F16");
    expectConsistentLayout(header);
    expect(header.fileSize).toBe(Math.ceil((header.tensors.at(-1)!.offset + header.tensors.at(-1)!.nBytes) / 32) * 32);

    const norm = header.tensors.find((t) => t.name === "blk.3.ffn_norm.weight")!;
    const normBytes = await readTensorBytes(outPath, norm.offset, norm.nBytes);
    expect(new Float32Array(normBytes.buffer, normBytes.byteOffset, 256).every((x) => x === 1)).toBe(true);

    const weights = header.tensors.find((t) => t.name === "blk.0.attn_q.weight")!;
    const weightBytes = await readTensorBytes(outPath, weights.offset, weights.nBytes);
    const values = Array.from(new Uint16Array(weightBytes.buffer, weightBytes.byteOffset, weights.nBytes / 2), halfToFloat);
    const mean = values.reduce((s, x) => s + x, 0) / values.length;
    const std = Math.sqrt(values.reduce((s, x) => s + (x - mean) ** 2, 0) / values.length);
    expect(Math.abs(mean)).toBeLessThan(0.001);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
    expect(values.every((x) => Math.abs(x) <= 0.0347)).toBe(true);
  });

  it("writes F32, is deterministic per seed and honours tied embeddings", async () => {
    const vocabPath = modelPath("stories260K.gguf");
    const shape: ModelShape = { ...MODEL_SHAPES.tiny, name: "tied tiny", tiedEmbeddings: true };
    const paths = ["s1a", "s1b", "s2"].map((name) => join(scratchDir, `${name}.gguf`));
    const seeds = [1, 1, 2];
    for (const [i, outPath] of paths.entries()) {
      await synthesizeModel({ shape, vocabPath, outPath, type: "f32", seed: seeds[i] });
    }
    const header = await readGgufHeader(paths[0]!);
    expect(header.metadata["general.file_type"]).toBe(0);
    expect(header.metadata["llama.vocab_size"]).toBe(512);
    expectLayout(header, llamaLayout(256, 4, 128, 768, 512, true));
    expect(header.tensors.every((t) => t.typeName === "F32")).toBe(true);
    expectConsistentLayout(header);
    const [a, b, c] = await Promise.all(paths.map((p) => readFile(p)));
    expect(a!.equals(b!)).toBe(true);
    expect(a!.equals(c!)).toBe(false);
  });

  it("rejects a vocabulary file without tokens and an inconsistent shape", async () => {
    const noTokens = join(scratchDir, "no-tokens.gguf");
    await writeGguf(noTokens, { kvs: [{ key: "general.architecture", type: "string", value: "llama" }], tensors: [] });
    const outPath = join(scratchDir, "never.gguf");
    await expect(synthesizeModel({ shape: "tiny", vocabPath: noTokens, outPath, type: "f16" })).rejects.toMatchObject({
      code: "INVALID_GGUF",
    });
    const badShape = { ...MODEL_SHAPES.tiny, nHeadKv: 3 };
    await expect(synthesizeModel({ shape: badShape, vocabPath: noTokens, outPath, type: "f16" })).rejects.toThrow(
      RangeError,
    );
  });
});

/** Little-endian byte builder for hand-made (and deliberately broken) GGUF files. */
class Bytes {
  private parts: Buffer[] = [];
  private push(size: number, write: (b: Buffer) => void): this {
    const b = Buffer.alloc(size);
    write(b);
    this.parts.push(b);
    return this;
  }
  raw(b: Buffer | string): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  u32(v: number): this {
    return this.push(4, (b) => b.writeUInt32LE(v));
  }
  i32(v: number): this {
    return this.push(4, (b) => b.writeInt32LE(v));
  }
  u64(v: bigint | number): this {
    return this.push(8, (b) => b.writeBigUInt64LE(BigInt(v)));
  }
  str(s: string): this {
    return this.u64(Buffer.byteLength(s)).raw(s);
  }
  zeros(n: number): this {
    return this.raw(Buffer.alloc(n));
  }
  /** GGUF v3 preamble. */
  static gguf(nTensors: bigint | number, nKv: bigint | number): Bytes {
    return new Bytes().raw("GGUF").u32(3).u64(nTensors).u64(nKv);
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const GGUF = { UINT32: 4, INT32: 5, STRING: 8, ARRAY: 9, UINT8: 0 } as const;

/** A header with one tensor; the tensor-info fields can be overridden to break it. */
function oneTensorFile(overrides: { dims?: Array<bigint | number>; type?: number; offset?: number; data?: number }) {
  const dims = overrides.dims ?? [8];
  const b = Bytes.gguf(1, 0).str("t").u32(dims.length);
  for (const d of dims) b.u64(d);
  b.i32(overrides.type ?? GgmlType.F32).u64(overrides.offset ?? 0);
  const header = b.build();
  const padded = Math.ceil(header.length / 32) * 32;
  return Buffer.concat([header, Buffer.alloc(padded - header.length + (overrides.data ?? 32))]);
}

function withBytes(base: Buffer, offset: number, patch: Buffer): Buffer {
  const copy = Buffer.from(base);
  patch.copy(copy, offset);
  return copy;
}

async function expectInvalid(
  path: string,
  message: RegExp,
  options?: ReadGgufHeaderOptions,
): Promise<void> {
  const started = performance.now();
  const error = await readGgufHeader(path, options).then(
    () => undefined,
    (err: unknown) => err,
  );
  const elapsed = performance.now() - started;
  expect(error, `${path} was accepted`).toBeInstanceOf(LlamaError);
  expect((error as LlamaError).code).toBe("INVALID_GGUF");
  expect((error as LlamaError).message).toMatch(message);
  expect(elapsed, "rejecting must be fast").toBeLessThan(2000);
}

describe("readGgufHeader on malformed files", () => {
  let stories: Buffer;
  let storiesHeader: GgufHeader;
  beforeAll(async () => {
    stories = await readFile(modelPath("stories260K.gguf"));
    storiesHeader = await readGgufHeader(modelPath("stories260K.gguf"));
  });

  const cases: Array<[string, () => Buffer, RegExp]> = [
    ["an empty file", () => Buffer.alloc(0), /truncated: the magic/],
    ["bad magic", () => withBytes(stories, 0, Buffer.from("GGUX")), /bad magic at byte 0/],
    ["version 1", () => withBytes(stories, 4, new Bytes().u32(1).build()), /version 1 .*v1/],
    ["version 4", () => withBytes(stories, 4, new Bytes().u32(4).build()), /unsupported GGUF version 4/],
    ["a big-endian file", () => withBytes(stories, 4, new Bytes().u32(0x03000000).build()), /big-endian/],
    ["a huge tensor count", () => Bytes.gguf(1n << 62n, 0).build(), /tensor count \d+ at byte 8 exceeds the limit/],
    ["a negative tensor count", () => Bytes.gguf(-1n & ((1n << 64n) - 1n), 0).build(), /negative tensor count/],
    ["more tensors than the file holds", () => Bytes.gguf(100000, 0).zeros(64).build(), /tensor count 100000 .*cannot fit/],
    ["a huge key/value count", () => Bytes.gguf(0, 1n << 40n).build(), /key\/value count \d+ at byte 16 exceeds/],
    ["a huge key length", () => Bytes.gguf(0, 1).u64(1n << 40n).zeros(64).build(), /length \d+ of key #0 at byte 24 exceeds/],
    ["a key length of 2^63", () => Bytes.gguf(0, 1).u64(1n << 63n).zeros(64).build(), /2\^53 or more/],
    [
      "a huge string value",
      () => Bytes.gguf(0, 1).str("k").i32(GGUF.STRING).u64(1n << 30n).zeros(64).build(),
      /length 1073741824 of the value of "k" at byte 37 exceeds the limit/,
    ],
    [
      "a string running past the end",
      () => Bytes.gguf(0, 1).str("k").i32(GGUF.STRING).u64(1000).zeros(64).build(),
      /length 1000 .* runs past the end of the file/,
    ],
    [
      "a huge array length",
      () => Bytes.gguf(0, 1).str("k").i32(GGUF.ARRAY).i32(GGUF.UINT8).u64(1n << 40n).build(),
      /element count 1099511627776 of the value of "k" at byte 41 exceeds the limit/,
    ],
    [
      "an array longer than the file",
      () => Bytes.gguf(0, 1).str("k").i32(GGUF.ARRAY).i32(GGUF.STRING).u64(1000000).zeros(100).build(),
      /element count 1000000 .*cannot fit/,
    ],
    ["an empty key", () => Bytes.gguf(0, 1).str("").i32(GGUF.UINT8).zeros(8).build(), /key #0 at byte 24 is empty/],
    [
      "a duplicate key",
      () => Bytes.gguf(0, 2).str("k").i32(GGUF.UINT8).zeros(1).str("k").i32(GGUF.UINT8).zeros(1).build(),
      /duplicate key "k"/,
    ],
    ["an invalid value type", () => Bytes.gguf(0, 1).str("k").i32(13).zeros(8).build(), /invalid value type 13/],
    [
      "an invalid array element type",
      () => Bytes.gguf(0, 1).str("k").i32(GGUF.ARRAY).i32(-1).u64(0).build(),
      /invalid value type -1 for the element type/,
    ],
    [
      "arrays nested too deep",
      () => {
        const b = Bytes.gguf(0, 1).str("k").i32(GGUF.ARRAY);
        for (let i = 0; i < 20; i++) b.i32(GGUF.ARRAY).u64(1);
        return b.i32(GGUF.UINT8).u64(0).build();
      },
      /nests arrays deeper than 8/,
    ],
    [
      "a non-uint32 alignment",
      () => Bytes.gguf(0, 1).str("general.alignment").i32(GGUF.INT32).i32(32).build(),
      /general.alignment" must be of type uint32/,
    ],
    [
      "an alignment that is not a power of 2",
      () => Bytes.gguf(0, 1).str("general.alignment").i32(GGUF.UINT32).u32(48).build(),
      /not a power of 2/,
    ],
    ["a removed tensor type", () => oneTensorFile({ type: 4 }), /unknown or removed ggml type 4/],
    ["an unknown tensor type", () => oneTensorFile({ type: 43 }), /unknown or removed ggml type 43/],
    ["a negative tensor type", () => oneTensorFile({ type: -1 }), /unknown or removed ggml type -1/],
    ["five dimensions", () => oneTensorFile({ dims: [1, 1, 1, 1, 1] }), /5 dimensions, at most 4/],
    ["a negative dimension", () => oneTensorFile({ dims: [8, -2n & ((1n << 64n) - 1n)] }), /dimension 1 is negative/],
    ["an overflowing shape", () => oneTensorFile({ dims: [1n << 31n, 1n << 31n, 1n << 31n, 4] }), /2\^63 or more/],
    ["a row not divisible by the block size", () => oneTensorFile({ dims: [33], type: GgmlType.Q4_0 }), /block size 32/],
    ["an unaligned data offset", () => oneTensorFile({ offset: 1 }), /data offset 1 is not a multiple of the alignment 32/],
    ["a gap before the first tensor", () => oneTensorFile({ offset: 64, data: 128 }), /data offset 64, expected 0/],
    ["tensor data past the end", () => oneTensorFile({ dims: [9] }), /lies outside the file/],
    ["a tensor name of 64 bytes", () => Bytes.gguf(1, 0).str("x".repeat(64)).zeros(64).build(), /exceeds the limit of 63/],
    [
      "a duplicate tensor name",
      () => {
        const b = Bytes.gguf(2, 0);
        for (const offset of [0, 32]) b.str("t").u32(1).u64(8).i32(GgmlType.F32).u64(offset);
        return b.zeros(128).build();
      },
      /duplicate tensor name "t"/,
    ],
  ];

  it.each(cases)("rejects %s", async (name, build, message) => {
    const path = join(scratchDir, `bad-${name.replace(/\W+/g, "-")}.gguf`);
    await writeFile(path, build());
    await expectInvalid(path, message);
  });

  it("rejects stories260K.gguf truncated anywhere before the end of its last tensor", async () => {
    const last = storiesHeader.tensors.at(-1)!;
    const lengths = new Set<number>();
    for (let n = 0; n < 64; n++) lengths.add(n);
    for (let n = 64; n < storiesHeader.dataOffset; n += 37) lengths.add(n);
    for (let i = 0; i < 20; i++) lengths.add(Math.floor(storiesHeader.dataOffset + (i / 20) * (last.offset - storiesHeader.dataOffset)));
    lengths.add(last.offset + last.nBytes - 1);
    const path = join(scratchDir, "truncated.gguf");
    for (const length of lengths) {
      await writeFile(path, stories.subarray(0, length));
      await expectInvalid(path, /truncated|outside the file|cannot fit|runs past the end/);
    }
  });

  it("enforces caller-supplied limits", async () => {
    await expectInvalid(modelPath("stories260K.gguf"), /limit of 100 metadata values/, { limits: { maxMetadataValues: 100 } });
    await expectInvalid(modelPath("stories260K.gguf"), /tensor count 48 at byte 8 exceeds the limit of 10/, {
      limits: { maxTensorCount: 10 },
    });
  });

  it("rejects lying headers in a 4 GiB file without reading or allocating gigabytes", async () => {
    const path = join(scratchDir, "sparse.gguf");
    const lies: Array<[Buffer, RegExp]> = [
      [Bytes.gguf(0, 1).str("k").i32(GGUF.STRING).u64(3n << 30n).build(), /exceeds the limit of 67108864 bytes/],
      [Bytes.gguf(0, 1).str("k").i32(GGUF.ARRAY).i32(GGUF.UINT8).u64(3n << 30n).build(), /exceeds the limit of 16777216/],
      // 200000 all-zero tensor infos, each named "": the second one is a duplicate.
      [Bytes.gguf(200000, 0).build(), /duplicate tensor name ""/],
    ];
    for (const [header, message] of lies) {
      const file = await open(path, "w");
      await file.write(header, 0, header.length, 0);
      await file.truncate(4 * 2 ** 30); // sparse: the rest reads as zeros
      await file.close();
      await expectInvalid(path, message);
    }
  });

  it.skipIf(process.platform === "win32")("rejects a FIFO without waiting for a writer", async () => {
    const path = join(scratchDir, "fifo.gguf");
    execFileSync("mkfifo", [path]);
    await expectInvalid(path, /not a regular file/);
  });

  it("rejects a directory", async () => {
    await expectInvalid(scratchDir, /not a regular file/);
  });

  it("reports a missing file as MODEL_NOT_FOUND", async () => {
    await expect(readGgufHeader(join(scratchDir, "missing.gguf"))).rejects.toMatchObject({
      name: "LlamaError",
      code: "MODEL_NOT_FOUND",
    });
  });
});
