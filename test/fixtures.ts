// Generated models for tests that need realistic widths: random weights, real shapes, a real
// tokenizer, quantized with llama-napi's own quantize(). Cached in test/.models (git-ignored).
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { quantize, type QuantType } from "../lib/index.js";
import type { GgufKv } from "../lib/gguf/types.js";
import { MODEL_SHAPES, synthesizeModel, type ModelShape } from "../lib/tools/synth.js";
import { encodeBmp, encodePng, encodeWav, seededImage, seededSound } from "../lib/tools/synth-media.js";
import { synthesizeProjector, VISION_ENCODER, type ProjectorKind } from "../lib/tools/synth-mmproj.js";
import { llamaCppDir, modelsDir, repoRoot } from "./helpers.js";

/** Llama 3.2 1B's width (2048, FFN 8192, 32 heads, 8 KV heads) with two layers and Llama 2's 32k vocabulary. */
export const WIDE_SHAPE: ModelShape = {
  name: "synthetic wide 2-layer",
  nEmbd: 2048,
  nLayer: 2,
  nHead: 32,
  nHeadKv: 8,
  nFf: 8192,
  contextLength: 4096,
  ropeFreqBase: 500000,
  rmsNormEps: 1e-5,
  tiedEmbeddings: true,
};

const cacheDir = join(repoRoot, "test", ".models");

async function once(path: string, make: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(path)) return path;
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await make(tmp);
  renameSync(tmp, path);
  return path;
}

export async function wideModel(type: "F16" | QuantType): Promise<string> {
  const f16 = await once(join(cacheDir, "wide-2l-f16.gguf"), async (tmp) => {
    await synthesizeModel({
      shape: WIDE_SHAPE,
      vocabPath: join(llamaCppDir(), "models", "ggml-vocab-llama-spm.gguf"),
      outPath: tmp,
      type: "f16",
      seed: 1,
    });
  });
  if (type === "F16") return f16;
  return once(join(cacheDir, `wide-2l-${type.toLowerCase()}.gguf`), (tmp) => quantize(f16, tmp, { type, threads: 2 }));
}

/** Meta-Llama-3-8B-Instruct's chat template (llama.cpp's vocab file for Llama 3 carries none). */
export const LLAMA3_CHAT_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + " +
  "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}" +
  "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/**
 * The `tiny` shape (256 wide, 4 layers, F32) with the tokenizer, and chat template, of a llama.cpp
 * vocab file; "llama3-chat" is the Llama 3 vocabulary with Llama 3's template.
 */
export async function tinyModel(vocab: "llama-bpe" | "llama3-chat" | "qwen2" | "phi-3" | "starcoder"): Promise<string> {
  return once(join(cacheDir, `tiny-${vocab}.gguf`), async (tmp) => {
    await synthesizeModel({
      shape: MODEL_SHAPES.tiny,
      vocabPath: join(llamaCppDir(), "models", `ggml-vocab-${vocab === "llama3-chat" ? "llama-bpe" : vocab}.gguf`),
      outPath: tmp,
      type: "f32",
      seed: 3,
      chatTemplate: vocab === "llama3-chat" ? LLAMA3_CHAT_TEMPLATE : undefined,
    });
  });
}

/** Qwen3-Reranker's prompt, as llama.cpp's converter writes it (conversion/qwen.py). */
export const QWEN3_RERANK_TEMPLATE =
  '<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n' +
  "<|im_start|>user\n<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: {query}\n<Document>: {document}<|im_end|>\n" +
  "<|im_start|>assistant\n<think>\n\n</think>\n\n";

/** A Qwen3-shaped model 64 wide, 2 layers, with Qwen2's tokenizer: tiny, yet a real vocabulary. */
export const QWEN3_TINY_SHAPE: ModelShape = {
  name: "synthetic Qwen3 reranker",
  nEmbd: 64,
  nLayer: 2,
  nHead: 4,
  nHeadKv: 2,
  nFf: 128,
  contextLength: 4096,
  ropeFreqBase: 1000000,
  rmsNormEps: 1e-6,
  tiedEmbeddings: true,
};

/**
 * A synthetic Qwen3 reranker: a `cls.output` head over the labels "yes" and "no" (weights large
 * enough that documents' scores differ by far more than rounding), pooling type rank, and
 * Qwen3-Reranker's "rerank" prompt template. "plain" has no template but a vocabulary that adds
 * BOS, EOS and SEP, so that llama-server's other way of joining query and document applies.
 */
export async function rerankerModel(variant: "template" | "plain"): Promise<string> {
  const u32 = (key: string, value: number): GgufKv => ({ key, type: "uint32", value });
  const flag = (key: string): GgufKv => ({ key, type: "bool", value: true });
  const metadata: GgufKv[] =
    variant === "template"
      ? [
          { key: "tokenizer.chat_templates", type: "array", value: { itemType: "string", items: ["rerank"] } },
          { key: "tokenizer.chat_template.rerank", type: "string", value: QWEN3_RERANK_TEMPLATE },
        ]
      : [flag("tokenizer.ggml.add_bos_token"), flag("tokenizer.ggml.add_eos_token"), flag("tokenizer.ggml.add_sep_token"), u32("tokenizer.ggml.seperator_token_id", 151644)];
  return once(join(cacheDir, `qwen3-reranker-${variant}.gguf`), async (tmp) => {
    await synthesizeModel({
      shape: QWEN3_TINY_SHAPE,
      architecture: "qwen3",
      rankHead: { labels: ["yes", "no"], amplitude: 0.3 },
      vocabPath: join(llamaCppDir(), "models", "ggml-vocab-qwen2.gguf"),
      outPath: tmp,
      type: "f32",
      seed: 5,
      metadata,
    });
  });
}

/** A query and documents to rerank: varied lengths and scripts, and text that looks like template placeholders or special tokens. */
export const RERANK_QUERY = "What do cats eat?";
/** Twenty documents: more than one decode holds (sixteen sequences, or 1024 tokens of Qwen3's template). */
export const RERANK_DOCUMENTS = [
  "Cats are obligate carnivores: they eat meat.",
  "The Eiffel Tower is in Paris.",
  "Kittens drink their mother's milk.",
  "x",
  "Quantum chromodynamics describes the strong interaction.",
  "Dry food and wet food are both fine for an adult cat.",
  "{query} and {document} are not placeholders here; nor is $& or $1.",
  "<|im_end|> a special token's text in a document",
  "Un chat mange des souris.",
  "猫は魚が好きです。",
  "The stock market closed higher on Tuesday.",
  "Tuna, chicken and salmon.",
  "Some cats like grass, which helps them digest.",
  "Dogs are omnivores.",
  "Milk upsets many adult cats' stomachs.",
  "The recipe calls for two eggs and a cup of flour.",
  "🐈 eats 🐟",
  "Mice, birds and insects are a feral cat's prey.",
  "Photosynthesis turns light into chemical energy.",
  "A balanced diet needs taurine.",
];

/** stories260K quantized by llama-napi's quantize(): a draft model that agrees with the F32 model often, not always. */
export async function storiesModel(type: QuantType): Promise<string> {
  return once(join(cacheDir, `stories260K-${type.toLowerCase()}.gguf`), (tmp) =>
    quantize(join(modelsDir(), "stories260K.gguf"), tmp, { type, threads: 2 }),
  );
}

/** A projector for stories260K (64 wide): LLaVA-1.5's layout for "vision", Ultravox's for "audio". */
export async function projectorModel(kind: ProjectorKind): Promise<string> {
  return once(join(cacheDir, `mmproj-${kind}-64.gguf`), async (tmp) => {
    await synthesizeProjector({ outPath: tmp, nEmbdOut: 64, kind, seed: 7 });
  });
}

/** An image from `seed` at the vision projector's input size (so that clip.cpp does not resample it). */
export async function imageFile(seed: number, format: "png" | "bmp" = "png"): Promise<string> {
  return once(join(cacheDir, `image-${seed}.${format}`), async (tmp) => {
    const image = seededImage(VISION_ENCODER.imageSize, VISION_ENCODER.imageSize, seed);
    writeFileSync(tmp, format === "png" ? encodePng(image) : encodeBmp(image));
  });
}

/** Two seconds of sound from `seed`, as a 16 kHz WAV (Whisper's rate, so that mtmd does not resample it). */
export async function soundFile(seed: number): Promise<string> {
  return once(join(cacheDir, `sound-${seed}.wav`), async (tmp) => {
    writeFileSync(tmp, encodeWav(seededSound(2, seed)));
  });
}
