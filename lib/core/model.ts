import { stat } from "node:fs/promises";
import { callNative, progressReporter, withAbort } from "./abort.js";
import { LlamaContext, type ContextOptions } from "./context.js";
import { LlamaError } from "../errors.js";
import { readGgufHeader, type GgufArray, type GgufHeader, type GgufValue, type GgufValueType } from "../gguf/reader.js";
import { native } from "./binding.js";
import type { NativeLoadOptions, NativeModel, NativeModelInfo } from "./native.js";
import { LlamaSampler, type SamplerOptions } from "./sampler.js";
import { TokenDecoder } from "./token-decoder.js";
import { checkEndpoints, watchRpc } from "./rpc.js";
import { boolean, number, checkOptions, expectBoolean, expectInteger, expectString, func, integer, signal, toTokenArray } from "../validate.js";

export interface LoadModelOptions {
  /** Layers to offload to the GPU (0: none, -1: all). Default 0. */
  nGpuLayers?: number;
  /** The GPU used when the model is not split. Default 0. */
  mainGpu?: number;
  /** Map the file instead of reading it. Default true. */
  useMmap?: boolean;
  /** Lock the weights in RAM. Default false. */
  useMlock?: boolean;
  /** Load the vocabulary only (tokenize/detokenize, no weights, no contexts). Default false. */
  vocabOnly?: boolean;
  /** Validate tensor data while loading (slow). Default false. */
  checkTensors?: boolean;
  /** ggml rpc-server workers ("host:port") that take layers (nGpuLayers says how many leave the CPU). */
  rpcServers?: string[];
  /** Share of the offloaded layers per device (RPC servers first, then local GPUs). */
  tensorSplit?: number[];
  /** Called with the load progress, 0 to 1. */
  onProgress?: (progress: number) => void;
  /** Aborts the load. */
  signal?: AbortSignal;
}

export interface TokenizeOptions {
  /** Add BOS/EOS as the model's vocabulary asks. Default true. */
  addSpecial?: boolean;
  /** Parse special-token text such as "<|eot_id|>" into its token. Default false. */
  parseSpecial?: boolean;
}

export interface DetokenizeOptions {
  /** Drop the BOS/EOS that tokenize added. Default false. */
  removeSpecial?: boolean;
  /** Render special tokens as their text. Default false. */
  unparseSpecial?: boolean;
}

export type ModelInfo = NativeModelInfo;

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
function valueOf(header: GgufHeader, key: string, type: GgufValueType): GgufValue | undefined {
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

/**
 * Reads and checks the GGUF header before llama.cpp sees the file: a malformed header is
 * INVALID_GGUF, and a well-formed file that llama.cpp would abort the process on is MODEL_LOAD_FAILED.
 */
async function checkModelFile(path: string, vocabOnly: boolean, useMmap: boolean): Promise<GgufHeader> {
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

/** A GGUF model loaded by llama.cpp: its vocabulary, metadata, and the factory of contexts and samplers. */
export class LlamaModel {
  readonly path: string;
  readonly info: ModelInfo;
  /** Layers of this model live on rpc-server workers. */
  readonly usesRpc: boolean;
  #native: NativeModel | null;
  #metadata: Record<string, string> | undefined;
  // Each generated token needs its bytes and whether it ends generation. A native call costs more
  // than the rest of a token's JavaScript, so each answer is fetched once per model.
  /** Token bytes for decoders: plain [0] and with special tokens rendered [1]. */
  readonly #pieces: [Map<number, Uint8Array>, Map<number, Uint8Array>] = [new Map(), new Map()];
  /** Per token: 0 not asked yet, 1 not end-of-generation, 2 end-of-generation. */
  #eogFlags: Uint8Array | undefined;

  private constructor(path: string, handle: NativeModel, usesRpc: boolean) {
    this.path = path;
    this.#native = handle;
    this.info = handle.info();
    this.usesRpc = usesRpc;
  }

  /** Loads a GGUF model without blocking the event loop. */
  static async load(path: string, options: LoadModelOptions = {}): Promise<LlamaModel> {
    expectString("path", path);
    const o = checkOptions<LoadModelOptions>("options", options, {
      nGpuLayers: integer({ min: -1 }),
      mainGpu: integer({ min: 0 }),
      useMmap: boolean,
      useMlock: boolean,
      vocabOnly: boolean,
      checkTensors: boolean,
      onProgress: func,
      signal: signal,
      rpcServers: checkEndpoints,
      tensorSplit: (name, value) => {
        if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of numbers`);
        value.forEach((v, i) => number({ min: 0 })(`${name}[${i}]`, v));
      },
    });
    if (o.signal?.aborted) throw new LlamaError("ABORTED", "model load aborted", { cause: o.signal.reason });
    const header = await checkModelFile(path, o.vocabOnly ?? false, o.useMmap ?? true);
    const { onProgress, signal: abortSignal, ...modelOptions } = o;
    // The vocabulary itself is read natively, byte for byte, and only where llama.cpp can hang on it.
    const loadOptions: NativeLoadOptions = { ...modelOptions, checkRwkvVocabulary: valueOf(header, "tokenizer.ggml.model", "string") === "rwkv" };
    const progress = progressReporter(onProgress);
    const usesRpc = (loadOptions.rpcServers?.length ?? 0) > 0;
    let handle: NativeModel | null = null;
    try {
      handle = await withAbort(abortSignal, "model load", (flag) => {
        const loading = native.loadModel(path, loadOptions, progress.report, flag);
        return usesRpc ? watchRpc(loading) : loading;
      });
    } finally {
      progress.settle(handle !== null);
    }
    return new LlamaModel(path, handle, usesRpc);
  }

  /** The native handle, or DISPOSED. */
  get native(): NativeModel {
    if (this.#native === null) throw new LlamaError("DISPOSED", "the model has been disposed");
    return this.#native;
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  get nVocab(): number {
    return this.info.nVocab;
  }

  /** All GGUF metadata, values as strings (arrays summarised by llama.cpp). */
  metadata(): Record<string, string> {
    this.#metadata ??= callNative(() => this.native.metadata());
    return this.#metadata;
  }

  tokenize(text: string, options: TokenizeOptions = {}): Int32Array {
    expectString("text", text);
    const o = checkOptions<TokenizeOptions>("options", options, { addSpecial: boolean, parseSpecial: boolean });
    return callNative(() => this.native.tokenize(text, o.addSpecial ?? true, o.parseSpecial ?? false));
  }

  detokenize(tokens: Int32Array | readonly number[], options: DetokenizeOptions = {}): string {
    const ids = toTokenArray("tokens", tokens);
    const o = checkOptions<DetokenizeOptions>("options", options, { removeSpecial: boolean, unparseSpecial: boolean });
    return callNative(() => this.native.detokenize(ids, o.removeSpecial ?? false, o.unparseSpecial ?? false));
  }

  /** The raw bytes of one token's text: may be part of a UTF-8 character. */
  tokenBytes(token: number, special = false): Uint8Array {
    expectInteger("token", token, { min: 0, max: this.info.nVocab - 1 });
    expectBoolean("special", special);
    return callNative(() => this.native.tokenBytes(token, special));
  }

  /** A decoder that turns generated tokens into text without splitting UTF-8 characters. */
  createTokenDecoder(options: { special?: boolean } = {}): TokenDecoder {
    const special = checkOptions<{ special?: boolean }>("options", options, { special: boolean }).special ?? false;
    const handle = this.native;
    const lastToken = this.info.nVocab - 1;
    // Decoders only read the bytes, so they share them.
    const pieces = this.#pieces[special ? 1 : 0];
    return new TokenDecoder((token) => {
      expectInteger("token", token, { min: 0, max: lastToken });
      let bytes = pieces.get(token);
      if (bytes === undefined) {
        bytes = callNative(() => handle.tokenBytes(token, special));
        pieces.set(token, bytes);
      }
      return bytes;
    });
  }

  /** The vocabulary entry of a token (as stored, e.g. "▁the"). */
  tokenText(token: number): string {
    expectInteger("token", token, { min: 0, max: this.info.nVocab - 1 });
    return callNative(() => this.native.tokenText(token));
  }

  /** True for end-of-generation tokens (EOS, EOT and the like). */
  isEog(token: number): boolean {
    expectInteger("token", token);
    const handle = this.native;
    if (token < 0 || token >= this.info.nVocab) return false;
    this.#eogFlags ??= new Uint8Array(this.info.nVocab);
    if (this.#eogFlags[token] === 0) this.#eogFlags[token] = callNative(() => handle.isEog(token)) ? 2 : 1;
    return this.#eogFlags[token] === 2;
  }

  /** The model's chat template from its GGUF (optionally a named one), or null. */
  chatTemplate(name?: string): string | null {
    if (name !== undefined) expectString("name", name);
    return callNative(() => this.native.chatTemplate(name));
  }

  /** Creates an inference context (KV cache) on this model. */
  createContext(options: ContextOptions = {}): Promise<LlamaContext> {
    return LlamaContext.create(this, options);
  }

  /** Builds a sampler chain for this model's vocabulary. */
  createSampler(options: SamplerOptions = {}): LlamaSampler {
    return new LlamaSampler(this, options);
  }

  /**
   * Frees the model. Contexts and samplers created from it keep the weights alive until they are
   * disposed too. Calling it again does nothing.
   */
  dispose(): void {
    if (this.#native === null) return;
    this.#native.dispose();
    this.#native = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}
