import { callNative } from "./abort.js";
import { LlamaError } from "../errors.js";
import type { LoadedModel } from "./loaded-model.js";
import { native } from "./binding.js";
import type { NativeContext, NativeSampler } from "./native.js";
import { resolveSampling, samplingChecks, type SamplerOptions } from "./sampling.js";
import { checkOptions, expectHandle, expectInteger } from "../validate.js";

export type { MirostatOptions, SamplerOptions } from "./sampling.js";

/** The context whose logits sample() reads: a LlamaContext (typed by what is read, as the context's file imports this one). */
export interface LogitsSource {
  readonly native: NativeContext;
  readonly nCtxSeq: number;
}

/** A llama.cpp sampler chain: penalties, grammar, truncation, temperature, then the pick. */
export class LlamaSampler {
  readonly model: LoadedModel;
  /** The seed actually used (a random one unless given). */
  readonly seed: number;
  #native: NativeSampler | null;

  constructor(model: LoadedModel, options: SamplerOptions = {}) {
    expectHandle("model", model, "LlamaModel", "nVocab");
    this.model = model;
    const o = checkOptions<SamplerOptions>("options", options, samplingChecks);
    const { seed, native: nativeOptions } = resolveSampling(o, model.nVocab);
    this.seed = seed;
    this.#native = callNative(() => new native.Sampler(model.native, nativeOptions));
  }

  get native(): NativeSampler {
    if (this.#native === null) throw new LlamaError("DISPOSED", "the sampler has been disposed");
    return this.#native;
  }

  /** The samplers of the chain, in order (e.g. ["penalties", "top-k", ..., "dist"]). */
  describe(): string[] {
    return callNative(() => this.native.describe());
  }

  /** Samples a token from the logits of a batch index of the context's last decode, and accepts it. */
  sample(context: LogitsSource, index: number): number {
    expectHandle("context", context, "LlamaContext", "nCtxSeq");
    expectInteger("index", index, { min: 0 });
    return callNative(() => this.native.sample(context.native, index));
  }

  /** Tells the chain a token was chosen (for penalties, grammar, mirostat state). */
  accept(token: number): void {
    expectInteger("token", token, { min: 0, max: this.model.nVocab - 1 });
    callNative(() => this.native.accept(token));
  }

  /** Forgets accepted tokens (penalty history, grammar position). */
  reset(): void {
    callNative(() => this.native.reset());
  }

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
