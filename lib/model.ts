import { open, stat } from "node:fs/promises";
import { withAbort, callNative } from "./abort.js";
import { LlamaContext, type ContextOptions } from "./context.js";
import { LlamaError } from "./errors.js";
import { native, type NativeModel, type NativeModelInfo } from "./native.js";
import { LlamaSampler, type SamplerOptions } from "./sampler.js";
import { TokenDecoder } from "./token-decoder.js";
import { boolean, checkOptions, expectBoolean, expectInteger, expectString, func, integer, signal, toTokenArray } from "./validate.js";

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

const GGUF_MAGIC = Buffer.from("GGUF", "latin1");
// magic, version, tensor count, metadata count
const GGUF_MIN_HEADER = 4 + 4 + 8 + 8;

async function checkModelFile(path: string): Promise<void> {
  let size: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new LlamaError("MODEL_NOT_FOUND", `${path} is not a file`);
    size = info.size;
  } catch (err) {
    if (err instanceof LlamaError) throw err;
    throw new LlamaError("MODEL_NOT_FOUND", `model file not found: ${path}`, { cause: err });
  }
  if (size < GGUF_MIN_HEADER) throw new LlamaError("INVALID_GGUF", `${path} is too small to be a GGUF file (${size} bytes)`);
  const file = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    await file.read(head, 0, 4, 0);
    if (!head.equals(GGUF_MAGIC)) {
      throw new LlamaError("INVALID_GGUF", `${path} is not a GGUF file (magic ${JSON.stringify(head.toString("latin1"))})`);
    }
  } finally {
    await file.close();
  }
}

/** A GGUF model loaded by llama.cpp: its vocabulary, metadata, and the factory of contexts and samplers. */
export class LlamaModel {
  readonly path: string;
  readonly info: ModelInfo;
  #native: NativeModel | null;
  #metadata: Record<string, string> | undefined;

  private constructor(path: string, handle: NativeModel) {
    this.path = path;
    this.#native = handle;
    this.info = handle.info();
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
    });
    if (o.signal?.aborted) throw new LlamaError("ABORTED", "model load aborted", { cause: o.signal.reason });
    await checkModelFile(path);
    const { onProgress, signal: abortSignal, ...loadOptions } = o;
    // Progress arrives from the loading thread through the event loop, possibly after the load
    // settled: late reports are dropped and a successful load always ends on 1.
    let settled = false;
    let last = -1;
    const report = onProgress && ((p: number) => {
      if (settled || p <= last) return;
      last = p;
      onProgress(p);
    });
    try {
      const handle = await withAbort(abortSignal, "model load", (flag) => native.loadModel(path, loadOptions, report, flag));
      settled = true;
      if (onProgress && last < 1) onProgress(1);
      return new LlamaModel(path, handle);
    } finally {
      settled = true;
    }
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
    const special = options.special ?? false;
    const handle = this.native;
    return new TokenDecoder((token) => handle.tokenBytes(token, special));
  }

  /** The vocabulary entry of a token (as stored, e.g. "▁the"). */
  tokenText(token: number): string {
    expectInteger("token", token, { min: 0, max: this.info.nVocab - 1 });
    return callNative(() => this.native.tokenText(token));
  }

  /** True for end-of-generation tokens (EOS, EOT and the like). */
  isEog(token: number): boolean {
    expectInteger("token", token);
    return callNative(() => this.native.isEog(token));
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
