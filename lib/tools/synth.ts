/**
 * Synthesizes llama- (or Qwen3-) architecture GGUF models with random weights and a real tokenizer,
 * to measure speed and memory at the sizes of real models without shipping gigabytes of weights,
 * and to test what needs a model of a kind (a reranker's head) without downloading one.
 */
import { LlamaError } from "../errors.js";
import { readGgufHeader } from "../gguf/reader.js";
import { GgmlType, type GgufKv } from "../gguf/types.js";
import { writeGguf, type GgufTensorSource } from "../gguf/writer.js";

/** Hyperparameters of a llama-architecture model (no MoE). */
export interface ModelShape {
  /** Written as general.name. */
  name: string;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  contextLength: number;
  ropeFreqBase: number;
  rmsNormEps: number;
  /** When true there is no output.weight: llama.cpp then reuses token_embd.weight (as Llama 3.2 does). */
  tiedEmbeddings: boolean;
}

export type ModelShapeName = "tiny" | "llama3-1b" | "llama3-3b" | "llama2-7b";

export const MODEL_SHAPES: Readonly<Record<ModelShapeName, Readonly<ModelShape>>> = Object.freeze({
  // Small enough for unit tests; untied so that output.weight is exercised.
  tiny: {
    name: "synthetic tiny",
    nEmbd: 256,
    nLayer: 4,
    nHead: 8,
    nHeadKv: 4,
    nFf: 768,
    contextLength: 4096,
    ropeFreqBase: 500000,
    rmsNormEps: 1e-5,
    tiedEmbeddings: false,
  },
  "llama3-1b": {
    name: "synthetic Llama 3.2 1B",
    nEmbd: 2048,
    nLayer: 16,
    nHead: 32,
    nHeadKv: 8,
    nFf: 8192,
    contextLength: 131072,
    ropeFreqBase: 500000,
    rmsNormEps: 1e-5,
    tiedEmbeddings: true,
  },
  "llama3-3b": {
    name: "synthetic Llama 3.2 3B",
    nEmbd: 3072,
    nLayer: 28,
    nHead: 24,
    nHeadKv: 8,
    nFf: 8192,
    contextLength: 131072,
    ropeFreqBase: 500000,
    rmsNormEps: 1e-5,
    tiedEmbeddings: true,
  },
  "llama2-7b": {
    name: "synthetic Llama 2 7B",
    nEmbd: 4096,
    nLayer: 32,
    nHead: 32,
    nHeadKv: 32,
    nFf: 11008,
    contextLength: 4096,
    ropeFreqBase: 10000,
    rmsNormEps: 1e-5,
    tiedEmbeddings: false,
  },
});

/** A reranker's head: `cls.output.weight` maps the last token's state to one score per label. */
export interface RankHead {
  /** Written as `<arch>.classifier.output_labels` (Qwen3 rerankers': ["yes", "no"]). */
  labels: string[];
  /** Its weights are uniform on [-amplitude, amplitude]: larger than the other weights' so that scores spread. */
  amplitude: number;
}

export interface SynthesizeModelOptions {
  shape: ModelShapeName | ModelShape;
  /** "llama" (default) or "qwen3", which adds RMS norms of each head's queries and keys. */
  architecture?: "llama" | "qwen3";
  /** A rank head (qwen3 only), with pooling type rank: a reranker as llama.cpp's converter writes one. */
  rankHead?: RankHead;
  /** A GGUF file whose `tokenizer.*` metadata is copied; it sets the vocabulary size. */
  vocabPath: string;
  outPath: string;
  /** Type of the 2-D weight matrices; norm weights are always F32. */
  type: "f32" | "f16";
  /** Same seed, shape and vocabulary give the same file. Default 0. */
  seed?: number;
  /** `tokenizer.chat_template` to write, in place of the vocabulary file's (if any). */
  chatTemplate?: string;
  /** Metadata written last, each entry in place of any with its key (named chat templates, tokenizer flags). */
  metadata?: GgufKv[];
}

export interface SynthesizeModelResult {
  path: string;
  fileSize: number;
  nVocab: number;
  nParams: number;
  tensorCount: number;
}

// Uniform on [-a, a] has standard deviation a/sqrt(3); weights get the usual init scale of 0.02.
const WEIGHT_STD = 0.02;
const WEIGHT_AMPLITUDE = WEIGHT_STD * Math.sqrt(3);

// llama_ftype values for general.file_type.
const FILE_TYPE = { f32: 0, f16: 1 } as const;

/**
 * Converts float32 values to IEEE half-precision bits, rounding to nearest even (as ggml does);
 * overflow gives infinity and NaN stays NaN.
 */
export function float32ToFloat16(src: Float32Array, dst: Uint16Array, count: number = src.length): void {
  if (count > src.length || count > dst.length) throw new RangeError("count exceeds the source or destination");
  const bits = new Uint32Array(src.buffer, src.byteOffset, count);
  for (let i = 0; i < count; i++) {
    const x = bits[i]!;
    const sign = (x >>> 16) & 0x8000;
    const abs = x & 0x7fffffff;
    let half: number;
    if (abs >= 0x38800000) {
      // At least the smallest normal half (2^-14).
      if (abs >= 0x7f800000) half = abs > 0x7f800000 ? 0x7e00 : 0x7c00;
      else if (abs >= 0x477ff000) half = 0x7c00; // 65520 and up round to infinity
      else half = (abs - 0x38000000 + 0x0fff + ((abs >>> 13) & 1)) >>> 13; // rebias exponent, round mantissa
    } else {
      // Subnormal half: the value in units of 2^-24, rounded to nearest even.
      const shift = 126 - (abs >>> 23);
      if (shift > 24) {
        half = 0;
      } else {
        const mantissa = (abs & 0x7fffff) | 0x800000;
        const rest = mantissa & ((1 << shift) - 1);
        const midpoint = 1 << (shift - 1);
        half = mantissa >>> shift;
        if (rest > midpoint || (rest === midpoint && (half & 1) === 1)) half++;
      }
    }
    dst[i] = sign | half;
  }
}

/**
 * sfc32 (Chris Doty-Humphrey's small fast counting generator): fast with 32-bit integer math. One
 * stream per (seed, label), so each tensor's values do not depend on the order tensors are written in.
 */
export class RandomStream {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number, label: string) {
    this.a = seed >>> 0;
    this.b = hashString(label);
    this.c = (Math.floor(seed / 2 ** 32) ^ 0x9e3779b9) >>> 0;
    const warmUp = new Float32Array(16);
    this.fillUniform(warmUp, warmUp.length, 1);
  }

  /** Writes `count` values uniform on [-amplitude, amplitude]. */
  fillUniform(out: Float32Array, count: number, amplitude: number): void {
    let { a, b, c, d } = this;
    const scale = (2 * amplitude) / 2 ** 32;
    for (let i = 0; i < count; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      out[i] = (t >>> 0) * scale - amplitude;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }
}

// FNV-1a, so that every tensor gets its own stream regardless of the order tensors are written in.
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function checkShape(shape: ModelShape): void {
  for (const key of ["nEmbd", "nLayer", "nHead", "nHeadKv", "nFf", "contextLength"] as const) {
    if (!Number.isSafeInteger(shape[key]) || shape[key] <= 0) {
      throw new RangeError(`shape.${key} must be a positive integer, got ${shape[key]}`);
    }
  }
  if (shape.nEmbd % shape.nHead !== 0) throw new RangeError(`nEmbd ${shape.nEmbd} is not a multiple of nHead ${shape.nHead}`);
  if (shape.nHead % shape.nHeadKv !== 0) throw new RangeError(`nHead ${shape.nHead} is not a multiple of nHeadKv ${shape.nHeadKv}`);
  if ((shape.nEmbd / shape.nHead) % 2 !== 0) throw new RangeError(`head size ${shape.nEmbd / shape.nHead} must be even for RoPE`);
}

async function readTokenizer(vocabPath: string): Promise<{ kvs: GgufKv[]; nVocab: number }> {
  const vocab = await readGgufHeader(vocabPath);
  const tokens = vocab.kvs.find((kv) => kv.key === "tokenizer.ggml.tokens");
  if (tokens === undefined || tokens.type !== "array" || typeof tokens.value !== "object" || tokens.value.itemType !== "string") {
    throw new LlamaError("INVALID_GGUF", `${vocabPath} has no tokenizer.ggml.tokens string array`);
  }
  const nVocab = tokens.value.items.length;
  if (nVocab === 0) throw new LlamaError("INVALID_GGUF", `${vocabPath} has an empty tokenizer.ggml.tokens`);
  return { kvs: vocab.kvs.filter((kv) => kv.key.startsWith("tokenizer.")), nVocab };
}

type Architecture = NonNullable<SynthesizeModelOptions["architecture"]>;

// llama.cpp's LLAMA_POOLING_TYPE_RANK.
const POOLING_TYPE_RANK = 4;

function modelMetadata(shape: ModelShape, arch: Architecture, type: "f32" | "f16", nVocab: number, rankHead: RankHead | undefined): GgufKv[] {
  const u32 = (key: string, value: number): GgufKv => ({ key: `${arch}.${key}`, type: "uint32", value });
  const f32 = (key: string, value: number): GgufKv => ({ key: `${arch}.${key}`, type: "float32", value });
  const head: GgufKv[] = rankHead === undefined ? [] : [
    u32("pooling_type", POOLING_TYPE_RANK),
    { key: `${arch}.classifier.output_labels`, type: "array", value: { itemType: "string", items: rankHead.labels } },
  ];
  return [
    { key: "general.architecture", type: "string", value: arch },
    { key: "general.name", type: "string", value: shape.name },
    { key: "general.file_type", type: "uint32", value: FILE_TYPE[type] },
    u32("vocab_size", nVocab),
    u32("context_length", shape.contextLength),
    u32("embedding_length", shape.nEmbd),
    u32("block_count", shape.nLayer),
    u32("feed_forward_length", shape.nFf),
    u32("attention.head_count", shape.nHead),
    u32("attention.head_count_kv", shape.nHeadKv),
    f32("rope.freq_base", shape.ropeFreqBase),
    f32("attention.layer_norm_rms_epsilon", shape.rmsNormEps),
    u32("rope.dimension_count", shape.nEmbd / shape.nHead),
    ...head,
  ];
}

/**
 * Tensor names and ggml shapes (ne[0] first) that llama.cpp's loader of the architecture expects
 * (src/models/llama.cpp, qwen3.cpp).
 */
function tensorLayout(shape: ModelShape, arch: Architecture, nVocab: number, rankHead: RankHead | undefined): Array<{ name: string; dims: number[] }> {
  const { nEmbd, nFf } = shape;
  const headSize = nEmbd / shape.nHead;
  const nEmbdKvGqa = headSize * shape.nHeadKv;
  const layout = [{ name: "token_embd.weight", dims: [nEmbd, nVocab] }];
  for (let i = 0; i < shape.nLayer; i++) {
    layout.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [nEmbd] },
      { name: `blk.${i}.attn_q.weight`, dims: [nEmbd, nEmbd] },
      { name: `blk.${i}.attn_k.weight`, dims: [nEmbd, nEmbdKvGqa] },
      { name: `blk.${i}.attn_v.weight`, dims: [nEmbd, nEmbdKvGqa] },
      { name: `blk.${i}.attn_output.weight`, dims: [nEmbd, nEmbd] },
      ...(arch === "qwen3" ? [{ name: `blk.${i}.attn_q_norm.weight`, dims: [headSize] }, { name: `blk.${i}.attn_k_norm.weight`, dims: [headSize] }] : []),
      { name: `blk.${i}.ffn_norm.weight`, dims: [nEmbd] },
      { name: `blk.${i}.ffn_gate.weight`, dims: [nEmbd, nFf] },
      { name: `blk.${i}.ffn_up.weight`, dims: [nEmbd, nFf] },
      { name: `blk.${i}.ffn_down.weight`, dims: [nFf, nEmbd] },
    );
  }
  layout.push({ name: "output_norm.weight", dims: [nEmbd] });
  if (!shape.tiedEmbeddings) layout.push({ name: "output.weight", dims: [nEmbd, nVocab] });
  if (rankHead !== undefined) layout.push({ name: "cls.output.weight", dims: [nEmbd, rankHead.labels.length] });
  return layout;
}

function checkRankHead(arch: Architecture, head: RankHead | undefined): void {
  if (head === undefined) return;
  // llama.cpp's llama architecture loads no cls.output, and refuses a file with a tensor it does not load.
  if (arch !== "qwen3") throw new RangeError('rankHead needs architecture "qwen3"');
  if (!Array.isArray(head.labels) || head.labels.length === 0 || !head.labels.every((l) => typeof l === "string")) {
    throw new TypeError("rankHead.labels must be a non-empty array of strings");
  }
  if (!(head.amplitude > 0 && Number.isFinite(head.amplitude))) throw new RangeError(`rankHead.amplitude must be a positive number, got ${head.amplitude}`);
}

/** `kvs` with each of `overrides` in place of the entry of its key (or added). */
function withOverrides(kvs: GgufKv[], overrides: GgufKv[]): GgufKv[] {
  const keys = new Set(overrides.map((kv) => kv.key));
  return [...kvs.filter((kv) => !keys.has(kv.key)), ...overrides];
}

/**
 * Writes a llama-architecture GGUF with random weights (uniform, std 0.02; norm weights 1.0) and
 * the tokenizer of `vocabPath`. Memory use stays bounded whatever the model size.
 */
export async function synthesizeModel(options: SynthesizeModelOptions): Promise<SynthesizeModelResult> {
  const shape = typeof options.shape === "string" ? MODEL_SHAPES[options.shape] : options.shape;
  if (shape === undefined) throw new RangeError(`unknown model shape ${JSON.stringify(options.shape)}`);
  checkShape(shape);
  if (options.type !== "f32" && options.type !== "f16") {
    throw new RangeError(`type must be "f32" or "f16", got ${JSON.stringify(options.type)}`);
  }
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);

  const arch = options.architecture ?? "llama";
  if (arch !== "llama" && arch !== "qwen3") throw new RangeError(`architecture must be "llama" or "qwen3", got ${JSON.stringify(arch)}`);
  checkRankHead(arch, options.rankHead);
  if (options.chatTemplate !== undefined && typeof options.chatTemplate !== "string") {
    throw new TypeError("chatTemplate must be a string");
  }
  if (options.metadata !== undefined && !Array.isArray(options.metadata)) throw new TypeError("metadata must be an array of GGUF entries");
  const tokenizer = await readTokenizer(options.vocabPath);
  const template: GgufKv[] = options.chatTemplate === undefined ? [] : [{ key: "tokenizer.chat_template", type: "string", value: options.chatTemplate }];
  const matrixType = options.type === "f16" ? GgmlType.F16 : GgmlType.F32;
  let scratch = new Float32Array(0); // float32 staging for f16 chunks, reused across chunks

  const tensors: GgufTensorSource[] = tensorLayout(shape, arch, tokenizer.nVocab, options.rankHead).map(({ name, dims }) => {
    if (dims.length === 1) {
      return {
        name,
        dims,
        type: GgmlType.F32,
        fill(chunk) {
          new Float32Array(chunk.buffer, chunk.byteOffset, chunk.length / 4).fill(1);
        },
      };
    }
    const random = new RandomStream(seed, name);
    const amplitude = name === "cls.output.weight" ? options.rankHead!.amplitude : WEIGHT_AMPLITUDE;
    return {
      name,
      dims,
      type: matrixType,
      fill(chunk) {
        if (matrixType === GgmlType.F32) {
          const count = chunk.length / 4;
          random.fillUniform(new Float32Array(chunk.buffer, chunk.byteOffset, count), count, amplitude);
          return;
        }
        const count = chunk.length / 2;
        if (scratch.length < count) scratch = new Float32Array(count);
        random.fillUniform(scratch, count, amplitude);
        float32ToFloat16(scratch, new Uint16Array(chunk.buffer, chunk.byteOffset, count), count);
      },
    };
  });

  const written = await writeGguf(options.outPath, {
    kvs: withOverrides([...modelMetadata(shape, arch, options.type, tokenizer.nVocab, options.rankHead), ...tokenizer.kvs], [...template, ...(options.metadata ?? [])]),
    tensors,
  });
  return {
    path: options.outPath,
    fileSize: written.fileSize,
    nVocab: tokenizer.nVocab,
    nParams: tensors.reduce((sum, t) => sum + t.dims.reduce((product, size) => product * size, 1), 0),
    tensorCount: tensors.length,
  };
}
