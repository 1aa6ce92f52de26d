// The JavaScript end of a native run ahead (LlamaContext.generateAhead): the addon posts the tokens
// of each decode and settles on separate queues, so tokens are delivered by index, each once, and
// `handled` tells the addon how far JavaScript has got: it runs at most one decode ahead of it. A
// throw must not reach the addon's callback (it would end the process): it stops the run instead.
import { native } from "./binding.js";
import type { NativeAbortFlag } from "./native.js";

/** The drafter's defaults (llama-server's), the one place they are set. */
export const DRAFTER_DEFAULTS = { nDraft: 16, pMin: 0.75, ngramSize: 3 } as const;

/** Speculative decoding's drafter (LlamaContext.setDrafter). */
export interface DrafterOptions {
  /** "model": a draft model's context drafts; "ngram": lookup in the sequence's own tokens. */
  type: "model" | "ngram";
  /** Most tokens drafted per verifying decode. Default 16. */
  nDraft?: number;
  /** A draft model's least probability of a drafted token (llama.cpp's p_min). Default 0.75. */
  pMin?: number;
  /** Tokens an n-gram must match before it drafts what followed them. Default 3. */
  ngramSize?: number;
}

export interface GenerateAheadOptions {
  signal?: AbortSignal;
}

/** Delivers a run's tokens to JavaScript (see the top of this file). */
export class RunAheadChannel {
  /** JavaScript's count of handled tokens, read by the addon (Atomics). */
  readonly handled = new Int32Array(1);
  readonly stopFlag: NativeAbortFlag = new native.AbortFlag();
  #delivered = 0;
  #failure: { error: unknown } | null = null;
  readonly #onToken: (token: number) => unknown;

  constructor(onToken: (token: number) => unknown) {
    this.#onToken = onToken;
  }

  /** The addon's callback: one call per decode (a speculative step's tokens come together). */
  readonly post = (first: number, tokens: Int32Array): void => {
    if (first !== this.#delivered || this.#failure !== null) return;
    tokens.forEach((token, i) => this.#deliver(first + i, token));
  };

  /** Delivers what the run sampled but whose posts have not arrived; throws what onToken threw. */
  finish(sampled: Int32Array): void {
    for (let i = this.#delivered; i < sampled.length; i++) this.#deliver(i, sampled[i]!);
    if (this.#failure !== null) throw this.#failure.error;
  }

  #deliver(index: number, token: number): void {
    if (index !== this.#delivered || this.#failure !== null) return;
    const count = ++this.#delivered;
    const acknowledge = () => {
      if (Atomics.load(this.handled, 0) < count) Atomics.store(this.handled, 0, count);
    };
    let taken: unknown;
    try {
      taken = this.#onToken(token);
    } catch (error) {
      this.#failure = { error };
      this.stopFlag.abort();
    }
    // Otherwise acknowledged after this turn's promise reactions: the addon posts tokens faster
    // than a tiny model's consumer could otherwise see them.
    if (taken instanceof Promise) taken.then(acknowledge, acknowledge);
    else queueMicrotask(acknowledge);
  }
}
