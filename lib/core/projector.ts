// Multimodal projectors: an mmproj GGUF loaded by llama.cpp's mtmd for a model, which splits a
// prompt at its media markers and turns each image or audio file into embeddings the model reads
// (LlamaContext.evalMedia decodes them into a sequence).
import { stat } from "node:fs/promises";
import { LlamaError } from "../errors.js";
import { checkOptions, expectString, integer, boolean, signal } from "../validate.js";
import { callNative, withAbort } from "./abort.js";
import { native } from "./binding.js";
import { flashCodes, type FlashAttention } from "./context-options.js";
import type { LoadedModel } from "./loaded-model.js";
import { mediaFacts } from "./media.js";
import type { NativeMediaChunk, NativeMediaPrompt, NativeProjector, NativeProjectorInfo } from "./native.js";

export type ProjectorInfo = NativeProjectorInfo;
export type MediaChunk = NativeMediaChunk;

export interface ProjectorOptions {
  /** Threads of the image and audio encoder. Default 4. */
  nThreads?: number;
  /** Encode on the GPU where there is one. Default true. */
  useGpu?: boolean;
  flashAttn?: FlashAttention;
  signal?: AbortSignal;
}

/**
 * A prompt whose media mtmd has read and preprocessed: its tokens (each media chunk's positions
 * hold a negative placeholder, the same for the same file) and its media chunks, in order.
 */
export class MediaPrompt {
  readonly tokens: Int32Array;
  readonly media: readonly MediaChunk[];
  #native: NativeMediaPrompt | null;

  constructor(handle: NativeMediaPrompt) {
    const { tokens, media } = callNative(() => handle.layout());
    this.tokens = tokens;
    this.media = media;
    this.#native = handle;
  }

  get native(): NativeMediaPrompt {
    if (this.#native === null) throw new LlamaError("DISPOSED", "the media prompt has been disposed");
    return this.#native;
  }

  /** Frees the preprocessed media. Idempotent. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }
}

export class LlamaProjector {
  readonly path: string;
  readonly info: ProjectorInfo;
  #native: NativeProjector | null;

  private constructor(path: string, handle: NativeProjector) {
    this.path = path;
    this.#native = handle;
    this.info = callNative(() => handle.info());
  }

  /** Loads the projector at `path` for `model`, on the thread pool; INCOMPATIBLE_MMPROJ when its output does not fit the model. */
  static async load(model: LoadedModel, path: string, options: ProjectorOptions = {}): Promise<LlamaProjector> {
    expectString("path", path);
    const o = checkOptions<ProjectorOptions>("options", options, {
      nThreads: integer({ min: 1, max: 1024 }),
      useGpu: boolean,
      flashAttn: (name, value) => {
        if (!(typeof value === "string" && value in flashCodes)) throw new TypeError(`${name} must be "auto", "on" or "off"`);
      },
      signal,
    });
    if (!(await stat(path).catch(() => null))?.isFile()) throw new LlamaError("MODEL_NOT_FOUND", `projector not found: ${path}`);
    const handle = await withAbort(o.signal, "projector load", (flag) =>
      native.loadProjector(model.native, path, { nThreads: o.nThreads, useGpu: o.useGpu, flashAttn: flashCodes[o.flashAttn ?? "auto"] }, flag),
    );
    return new LlamaProjector(path, handle);
  }

  get native(): NativeProjector {
    if (this.#native === null) throw new LlamaError("DISPOSED", "the projector has been disposed");
    return this.#native;
  }

  /**
   * Splits `text` at its media markers (info.marker, one per item of `media`, in order) and reads
   * each item on the thread pool: images as stb_image decodes them, audio as miniaudio does.
   * INVALID_MEDIA for a file it cannot read or the projector cannot take.
   */
  async tokenize(text: string, media: readonly Uint8Array[], options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): Promise<MediaPrompt> {
    expectString("text", text);
    const markers = text.split(this.info.marker).length - 1;
    if (markers !== media.length) throw new LlamaError("INVALID_ARGUMENT", `the prompt has ${markers} media markers (${this.info.marker}) for ${media.length} media`);
    media.forEach((bytes, i) => this.checkMedia(`media[${i}]`, bytes));
    const handle = await withAbort(undefined, "media tokenize", () => this.native.tokenize(text, [...media], options.addSpecial ?? true, options.parseSpecial ?? true));
    return new MediaPrompt(handle);
  }

  /** INVALID_MEDIA, naming the file `name`, unless `bytes` is an image or sound this projector takes. */
  checkMedia(name: string, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array (or Buffer)`);
    const { kind } = mediaFacts(name, bytes);
    if (kind === "image" && !this.info.vision) throw new LlamaError("INVALID_MEDIA", `${name} is an image, but the projector takes no images`);
    if (kind === "audio" && !this.info.audio) throw new LlamaError("INVALID_MEDIA", `${name} is audio, but the projector takes no audio`);
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  /** Frees the projector; media prompts and contexts that use it keep it until they are done. Idempotent. */
  dispose(): void {
    this.#native?.dispose();
    this.#native = null;
  }
}
