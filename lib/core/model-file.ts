// The GGUF header, read and checked before llama.cpp sees the file: a malformed header is
// INVALID_GGUF, and a well-formed file that llama.cpp would abort the process on is MODEL_LOAD_FAILED.
// Also what only the tensor table tells of a model: whether it has a rank head.
import { stat } from "node:fs/promises";
import { LlamaError } from "../errors.js";
import { readGgufHeader } from "../gguf/reader.js";
import type { GgufArray, GgufHeader, GgufValue, GgufValueType } from "../gguf/types.js";

// Limits that llama.cpp asserts (aborting the process) instead of failing the load.
const LLAMA_MAX_LAYERS = 512;
const LLAMA_MAX_EXPERTS = 1024;
// ggml maps tensor data in place only at addresses aligned to this (TENSOR_ALIGNMENT).
const MAPPED_TENSOR_ALIGNMENT = 32;
const ROPE_SCALING_TYPES = new Set(["none", "linear", "yarn", "longrope"]);
// Tokenizer models whose vocabulary is `<arch>.vocab_size` placeholder tokens, not a token list.
const PLACEHOLDER_VOCABS = new Set(["none", "no_vocab"]);
// More tokens than this would be a vocabulary of gigabytes (the GGUF reader caps lists alike).
const MAX_PLACEHOLDER_TOKENS = 1 << 24;
// Types ggml's CPU backend has no dot product or arithmetic for: a weight of one of these loads,
// then crashes the first decode. (Integer tensors not named as weights, such as a draft model's
// "d2t" map, are lookup tables and stay allowed.)
const NON_COMPUTE_TYPES = new Set(["I8", "I16", "I32", "I64", "F64", "Q8_1", "Q8_K"]);

/** A metadata value of the type llama.cpp reads it as (it rejects every other type itself). */
export function valueOf(header: GgufHeader, key: string, type: GgufValueType): GgufValue | undefined {
  const entry = header.kvs.find((kv) => kv.key === key);
  return entry?.type === type ? entry.value : undefined;
}

/** A count llama.cpp reads as uint32: a scalar, or the largest entry of a per-layer array. */
function largestCount(header: GgufHeader, key: string): number {
  const scalar = valueOf(header, key, "uint32");
  if (typeof scalar === "number") return scalar;
  const array = valueOf(header, key, "array") as GgufArray | undefined;
  if (array === undefined || (array.itemType !== "uint32" && array.itemType !== "int32")) return 0;
  return array.items.reduce<number>((max, item) => Math.max(max, (item as number) >>> 0), 0);
}

/**
 * What in a well-formed GGUF makes llama.cpp abort the process instead of failing, or null.
 * Weights ggml cannot compute with and a negative epsilon pass the load and abort the first decode
 * on ggml's worker threads, where nothing can catch it. The assertions of
 * llama_model_base::load_hparams and ggml's alignment assertion for mapped tensor data fire while
 * loading, where the addon's abort guard would also fail the load; here they get a plain message.
 * (Duplicate tokens are left to that guard: llama.cpp compares tokens only up to a NUL byte.)
 */
function llamaCppHazard(header: GgufHeader, vocabOnly: boolean, useMmap: boolean): string | null {
  const tokenizer = valueOf(header, "tokenizer.ggml.model", "string");
  const arch = valueOf(header, "general.architecture", "string");
  // Not an abort but a leak: llama.cpp throws on it before it owns the tensor table it allocated.
  const archEntry = header.kvs.find((kv) => kv.key === "general.architecture");
  if (archEntry !== undefined && archEntry.type !== "string") return `general.architecture is ${archEntry.type}, not a string`;
  if (typeof tokenizer === "string" && PLACEHOLDER_VOCABS.has(tokenizer)) {
    const size = valueOf(header, `${String(arch)}.vocab_size`, "uint32");
    if (typeof size === "number" && size > MAX_PLACEHOLDER_TOKENS) {
      return `${String(arch)}.vocab_size ${size} exceeds ${MAX_PLACEHOLDER_TOKENS} tokens`;
    }
  }
  if (vocabOnly || typeof arch !== "string" || arch === "clip") return null;

  for (const t of header.tensors) {
    if (!/\.(weight|bias)$/.test(t.name)) continue;
    if (NON_COMPUTE_TYPES.has(t.typeName)) return `tensor ${JSON.stringify(t.name)} has type ${t.typeName}, which ggml cannot compute with`;
    // Norms, biases and scales are added and multiplied element-wise, which ggml does in F32 only
    // (converters and the quantizer always keep one-dimensional tensors F32).
    if (t.dims.length === 1 && t.typeName !== "F32") return `one-dimensional tensor ${JSON.stringify(t.name)} has type ${t.typeName}, not F32`;
  }
  // ggml's norm operators assert a non-negative epsilon in the middle of a decode.
  const epsilon = header.kvs.find((kv) => kv.key.endsWith("_epsilon") && (kv.type === "float32" || kv.type === "float64") && !((kv.value as number) >= 0));
  if (epsilon !== undefined) return `${epsilon.key} is ${String(epsilon.value)}, not a non-negative number`;

  const layers = valueOf(header, `${arch}.block_count`, "uint32");
  if (typeof layers === "number") {
    if (layers === 0 || layers > LLAMA_MAX_LAYERS) return `${arch}.block_count ${layers} is not between 1 and ${LLAMA_MAX_LAYERS}`;
    const nextn = valueOf(header, `${arch}.nextn_predict_layers`, "uint32");
    if (typeof nextn === "number" && nextn > layers) return `${arch}.nextn_predict_layers ${nextn} exceeds the block count ${layers}`;
  }
  const experts = (valueOf(header, `${arch}.expert_count`, "uint32") as number | undefined) ?? 0;
  const used = largestCount(header, `${arch}.expert_used_count`);
  const groups = (valueOf(header, `${arch}.expert_group_count`, "uint32") as number | undefined) ?? 0;
  const groupsUsed = (valueOf(header, `${arch}.expert_group_used_count`, "uint32") as number | undefined) ?? 0;
  if (experts > LLAMA_MAX_EXPERTS) return `${arch}.expert_count ${experts} exceeds ${LLAMA_MAX_EXPERTS}`;
  if (used > experts) return `${arch}.expert_used_count ${used} exceeds the expert count ${experts}`;
  if (experts > 0) {
    if (used === 0) return `${arch}.expert_used_count is 0 with ${experts} experts`;
    if (groups >= experts) return `${arch}.expert_group_count ${groups} is not below the expert count ${experts}`;
    if (groups > 1 && (experts % groups !== 0 || groupsUsed === 0 || groupsUsed >= groups)) {
      return `${arch}: ${experts} experts in ${groups} groups with ${groupsUsed} used is inconsistent`;
    }
  } else if (groups !== 0) {
    return `${arch}.expert_group_count ${groups} without experts`;
  }
  const ropeScaling = valueOf(header, `${arch}.rope.scaling.type`, "string");
  if (typeof ropeScaling === "string" && !ROPE_SCALING_TYPES.has(ropeScaling)) {
    return `unknown ${arch}.rope.scaling.type ${JSON.stringify(ropeScaling.slice(0, 40))}`;
  }
  if (useMmap) {
    const misaligned = header.tensors.find((t) => t.offset % MAPPED_TENSOR_ALIGNMENT !== 0);
    if (misaligned !== undefined) {
      return (
        `tensor ${JSON.stringify(misaligned.name)} starts at byte ${misaligned.offset}, not a multiple of ` +
        `${MAPPED_TENSOR_ALIGNMENT}, so llama.cpp cannot map it (general.alignment ${header.alignment}); load with useMmap: false`
      );
    }
  }
  return null;
}

/** Reads and checks the GGUF header of a model file (see the top of this file). */
export async function checkModelFile(path: string, vocabOnly: boolean, useMmap: boolean): Promise<GgufHeader> {
  try {
    if (!(await stat(path)).isFile()) throw new LlamaError("MODEL_NOT_FOUND", `${path} is not a file`);
  } catch (err) {
    if (err instanceof LlamaError) throw err;
    throw new LlamaError("MODEL_NOT_FOUND", `model file not found: ${path}`, { cause: err });
  }
  let header: GgufHeader;
  try {
    // The longest arrays read here are per-layer ones: the vocabulary is checked, not decoded.
    header = await readGgufHeader(path, { arrayItemLimit: LLAMA_MAX_LAYERS });
  } catch (err) {
    if (err instanceof LlamaError && err.code === "INVALID_GGUF") {
      throw new LlamaError("INVALID_GGUF", `${path} is not a GGUF file llama.cpp can load: ${err.message}`, { cause: err });
    }
    throw err;
  }
  // The GGUF format allows arrays of arrays; ggml's reader does not.
  const nested = header.kvs.find((kv) => kv.type === "array" && (kv.value as GgufArray).itemType === "array");
  if (nested !== undefined) {
    throw new LlamaError("INVALID_GGUF", `${path} is not a GGUF file llama.cpp can load: ${nested.key} is an array of arrays`);
  }
  const hazard = llamaCppHazard(header, vocabOnly, useMmap);
  if (hazard !== null) throw new LlamaError("MODEL_LOAD_FAILED", `failed to load model from ${path}: ${hazard}`);
  return header;
}

// A split model's file names end so (llama.cpp's llama_split_path), numbered from 1.
const SPLIT_SUFFIX = /-00001-of-(\d{5})\.gguf$/;

/**
 * Whether a model has a classification head (`cls.weight` or `cls.output.weight`, in any of a split
 * model's files): what makes llama.cpp's rank pooling a relevance score. Without one, rank pooling
 * yields the raw state of a token.
 */
export async function hasRankHead(path: string): Promise<boolean> {
  const header = await readGgufHeader(path, { arrayItemLimit: 0 });
  const count = valueOf(header, "split.count", "uint16");
  const split = SPLIT_SUFFIX.exec(path);
  const paths = typeof count === "number" && count > 1 && split !== null && Number(split[1]) === count
    ? Array.from({ length: count - 1 }, (_, i) => path.replace(SPLIT_SUFFIX, `-${String(i + 2).padStart(5, "0")}-of-${split[1]}.gguf`))
    : [];
  const headers = [header, ...(await Promise.all(paths.map((p) => readGgufHeader(p, { arrayItemLimit: 0 }))))];
  return headers.some((h) => h.tensors.some((t) => t.name === "cls.weight" || t.name === "cls.output.weight"));
}
