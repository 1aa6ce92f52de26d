// A loaded model's handle, vocabulary and metadata: what its contexts and samplers use.
import { callNative } from "./abort.js";
import { LlamaError } from "../errors.js";
import type { NativeModel, NativeModelInfo } from "./native.js";
import { TokenDecoder } from "./token-decoder.js";
import { boolean, checkOptions, expectBoolean, expectInteger, expectString, toTokenArray } from "../validate.js";

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

/**
 * A GGUF model loaded by llama.cpp: its native handle, vocabulary and metadata. LlamaModel adds how
 * it is loaded and the factories of its contexts and samplers; the contexts and samplers hold this
 * part, so that their files need not import LlamaModel's.
 */
export class LoadedModel {
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

  protected constructor(path: string, handle: NativeModel, usesRpc: boolean) {
    this.path = path;
    this.#native = handle;
    this.info = handle.info();
    this.usesRpc = usesRpc;
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

  /**
   * A decoder that turns generated tokens into text without splitting UTF-8 characters. Special
   * tokens come out as their text with `special`, or only those in `specialTokens` (a chat's tool
   * call markers, as llama-server's preserved tokens).
   */
  createTokenDecoder(options: { special?: boolean; specialTokens?: ReadonlySet<number> } = {}): TokenDecoder {
    const o = checkOptions<{ special?: boolean; specialTokens?: ReadonlySet<number> }>("options", options, {
      special: boolean,
      specialTokens: (name, value) => {
        if (!(value instanceof Set)) throw new TypeError(`${name} must be a Set of token ids`);
        return value;
      },
    });
    const special = o.special ?? false;
    const handle = this.native;
    const lastToken = this.info.nVocab - 1;
    return new TokenDecoder((token) => {
      expectInteger("token", token, { min: 0, max: lastToken });
      const rendered = special || (o.specialTokens?.has(token) ?? false);
      // Decoders only read the bytes, so they share them.
      const pieces = this.#pieces[rendered ? 1 : 0];
      let bytes = pieces.get(token);
      if (bytes === undefined) {
        bytes = callNative(() => handle.tokenBytes(token, rendered));
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
