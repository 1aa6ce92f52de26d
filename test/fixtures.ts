// Generated models for tests that need realistic widths: random weights, real shapes, a real
// tokenizer, quantized with llama-napi's own quantize(). Cached in test/.models (git-ignored).
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { join } from "node:path";
import { quantize, type QuantType } from "../lib/index.js";
import { MODEL_SHAPES, synthesizeModel, type ModelShape } from "../lib/tools/synth.js";
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

/** stories260K quantized by llama-napi's quantize(): a draft model that agrees with the F32 model often, not always. */
export async function storiesModel(type: QuantType): Promise<string> {
  return once(join(cacheDir, `stories260K-${type.toLowerCase()}.gguf`), (tmp) =>
    quantize(join(modelsDir(), "stories260K.gguf"), tmp, { type, threads: 2 }),
  );
}
