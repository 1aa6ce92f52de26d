// LoRA adapter GGUFs for the test models, written with the project's own GGUF writer, and the text
// llama.cpp's `llama-completion` prints with them as the reference.
//
// What llama.cpp (src/llama-adapter.cpp, llama_adapter_lora_init_impl) requires of the file:
// - general.type = "adapter" (string), adapter.type = "lora" (string);
// - general.architecture equal to the base model's, else "model arch and LoRA arch mismatch";
// - adapter.lora.alpha as a float32 (read with gguf_get_val_f32, which asserts the type; absent = 0,
//   which means "no alpha": the delta is then scaled by the user's scale alone, not scale*alpha/rank);
// - tensors named `<base tensor>.lora_a` and `.lora_b` (`*_norm.weight` is skipped, any other name
//   is refused), both of a pair present, the base tensor present in the model;
// - for a base weight of ne [n_in, n_out]: lora_a ne [n_in, rank], lora_b ne [rank, n_out].
// The graph adds scale * alpha / rank * (B · (A · x)) to W · x (llm_graph_context::build_lora_mm),
// so with alpha = rank the delta of W is exactly scale · (B·A); scale 0 adds exact zeros.
import { readGgufHeader } from "../lib/gguf/reader.js";
import { GgmlType, type GgufKv } from "../lib/gguf/types.js";
import { writeGguf, type GgufTensorSource } from "../lib/gguf/writer.js";
import { modelPath } from "./helpers.js";
import { llamaCompletionOutput, type GreedyReference } from "./llama-cpp-tools.js";

export interface LoraFixtureOptions {
  /** The GGUF the adapter is for: its tensor shapes and, unless `architecture` is given, its architecture. */
  baseModelPath: string;
  /** Default 4. */
  rank?: number;
  /** Same seed and options give the same bytes. Default 0. */
  seed?: number;
  /** Written as adapter.lora.alpha. Default `rank`, so that llama.cpp's multiplier is the scale itself. */
  alpha?: number;
  /** Written as general.architecture, e.g. "qwen2" for an adapter of another architecture. Default: the base model's. */
  architecture?: string;
  /** The per-block weights to adapt (`blk.N.<target>.weight`). Default attn_q, attn_k, attn_v, attn_output. */
  targets?: readonly string[];
  /**
   * Standard deviation of the entries of A and B (normal). Default 0.1: with rank 4 the entries of
   * B·A have a standard deviation of about 0.02 (stories260K's attention weights: 0.05 to 0.24), so
   * at scale 1 and seed 0 its greedy text departs from the base model's after about 10 tokens and
   * stays readable; 0.15 already makes it loop on fragments ("ne ne ne").
   */
  std?: number;
}

export const DEFAULT_LORA_TARGETS: readonly string[] = ["attn_q", "attn_k", "attn_v", "attn_output"];

// mulberry32: a small seeded 32-bit generator (no Math.random, so fixtures are reproducible).
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

// FNV-1a, so that each tensor has its own stream whatever the order or the set of targets.
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** `count` values N(0, std²) by Box-Muller, from a stream seeded by `seed` and `label`. */
function normals(seed: number, label: string, count: number, std: number): Float32Array {
  const next = mulberry32(Math.imul(seed >>> 0, 0x9e3779b1) ^ hashString(label));
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = std * Math.sqrt(-2 * Math.log(1 - next())); // 1 - u is in (0, 1]
    const angle = 2 * Math.PI * next();
    out[i] = radius * Math.cos(angle);
    if (i + 1 < count) out[i + 1] = radius * Math.sin(angle);
  }
  return out;
}

function f32Tensor(name: string, dims: number[], data: Float32Array): GgufTensorSource {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return { name, dims, type: GgmlType.F32, fill: (chunk, offset) => void bytes.copy(chunk, 0, offset, offset + chunk.length) };
}

/** Writes a LoRA adapter GGUF (F32 A and B, seeded normal values) for the 2-D per-block weights named by `targets`. */
export async function writeLoraFixture(path: string, options: LoraFixtureOptions): Promise<void> {
  const rank = options.rank ?? 4;
  const seed = options.seed ?? 0;
  const std = options.std ?? 0.1;
  const targets = options.targets ?? DEFAULT_LORA_TARGETS;
  if (!Number.isSafeInteger(rank) || rank < 1) throw new RangeError(`rank must be a positive integer, got ${rank}`);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);

  const base = await readGgufHeader(options.baseModelPath);
  const baseArchitecture = base.metadata["general.architecture"];
  const architecture = options.architecture ?? baseArchitecture;
  if (typeof architecture !== "string") throw new Error(`${options.baseModelPath} has no general.architecture`);

  const tensors: GgufTensorSource[] = [];
  for (const target of targets) {
    const pattern = new RegExp(`^blk\\.\\d+\\.${target.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.weight$`);
    const matches = base.tensors.filter((t) => pattern.test(t.name));
    if (matches.length === 0) throw new Error(`no tensor blk.N.${target}.weight in ${options.baseModelPath}`);
    for (const t of matches) {
      if (t.dims.length !== 2) throw new Error(`${t.name} is not a matrix: [${t.dims.join(", ")}]`);
      const [nIn, nOut] = t.dims as [number, number];
      tensors.push(f32Tensor(`${t.name}.lora_a`, [nIn, rank], normals(seed, `${t.name}.lora_a`, nIn * rank, std)));
      tensors.push(f32Tensor(`${t.name}.lora_b`, [rank, nOut], normals(seed, `${t.name}.lora_b`, rank * nOut, std)));
    }
  }

  const kvs: GgufKv[] = [
    { key: "general.architecture", type: "string", value: architecture },
    { key: "general.type", type: "string", value: "adapter" },
    { key: "general.name", type: "string", value: `llama-napi test LoRA (rank ${rank}, seed ${seed})` },
    { key: "adapter.type", type: "string", value: "lora" },
    { key: "adapter.lora.alpha", type: "float32", value: options.alpha ?? rank },
  ];
  await writeGguf(path, { kvs, tensors });
}

/**
 * What llama-completion prints (greedy, 2 threads) with the adapter at `scale`: the prompt as the
 * model's tokens render it (BOS left out), then the continuation; as greedyReferences parses it.
 */
export function loraReference(model: GreedyReference["model"], loraPath: string, scale: number, prompt: string, nPredict: number): Buffer {
  // llama.cpp splits the --lora-scaled value on ':' (FNAME:SCALE) and on ',' (several adapters).
  if (/[:,]/.test(loraPath)) throw new Error(`llama-completion cannot take a LoRA path with ':' or ',': ${loraPath}`);
  const args = ["-m", modelPath(model), "--lora-scaled", `${loraPath}:${scale}`, "-p", prompt, "-n", String(nPredict)];
  args.push("-t", "2", "--temp", "0", "-no-cnv", "--no-warmup");
  return llamaCompletionOutput(args);
}
