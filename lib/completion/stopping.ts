// Why generation stops: the one place that decides it. Each sampled token goes through
// StopCondition.next, which says what text the token releases and whether generation ends there:
// an abort, an end-of-generation token (a complete grammar ends with one too), a stop string in the
// text (across token boundaries), maxTokens, or a full context (unless it shifts). The scheduler
// and the native run ahead only bound how far they go; they never choose the finish reason.
import { LlamaError } from "../errors.js";
import type { TokenDecoder } from "../core/token-decoder.js";
import { StopTextStream } from "./text-stream.js";
import type { FinishReason } from "./types.js";

export type StopReason = "abort" | "eog" | "stop-string" | "length" | "context-full";

export interface StopRules {
  /** Turns the tokens into text (LoadedModel.createTokenDecoder, or any TokenDecoder). */
  decoder: TokenDecoder;
  isEog(token: number): boolean;
  /** Stop strings: the text ends before the first one found. */
  stops: readonly string[];
  /** Tokens to generate at most (Infinity: no limit). */
  maxTokens: number;
  /**
   * Tokens the context has room for after the prompt (the first token is sampled from the prompt's
   * last logits, so a prompt that fills the context still gets one). Infinity where it shifts.
   */
  room: number;
  signal?: AbortSignal;
}

/** OpenAI's finish_reason of a generation that stopped for `reason`. */
export function finishReasonOf(reason: Exclude<StopReason, "abort">): FinishReason {
  return reason === "eog" || reason === "stop-string" ? "stop" : "length";
}

/** The error of a generation stopped by its signal. */
export function abortError(signal: AbortSignal | undefined): LlamaError {
  return new LlamaError("ABORTED", "generation aborted", { cause: signal?.reason });
}

export class StopCondition {
  readonly #rules: StopRules;
  readonly #text: StopTextStream;
  #generated = 0;
  #reason: StopReason | null = null;

  constructor(rules: StopRules) {
    this.#rules = rules;
    this.#text = new StopTextStream(rules.decoder, rules.stops);
  }

  /** Why generation stopped; null while it goes on. */
  get reason(): StopReason | null {
    return this.#reason;
  }

  /** Tokens generated so far (an end-of-generation token is not one). */
  get generated(): number {
    return this.#generated;
  }

  /** How many more tokens it takes at most: none once generation stopped or was aborted. */
  get tokensLeft(): number {
    if (this.check() !== null) return 0;
    return Math.max(0, Math.min(this.#rules.maxTokens, Math.max(this.#rules.room, 1)) - this.#generated);
  }

  /** Every character decoded so far, released or held back (cut at a stop string). */
  get decoded(): string {
    return this.#text.decoded;
  }

  /** The text released so far. */
  get text(): string {
    return this.#text.text;
  }

  /** Whether generation must stop before the next token: it stopped already, or was aborted. */
  check(): StopReason | null {
    if (this.#reason === null && this.#rules.signal?.aborted) this.#reason = "abort";
    return this.#reason;
  }

  /** Takes a sampled token: the text it releases, and why generation stops here (null: it goes on). */
  next(token: number): { delta: string; stop: StopReason | null } {
    if (this.check() !== null) return { delta: "", stop: this.#reason };
    if (this.#rules.isEog(token)) return this.#stop("eog", "");
    this.#generated++;
    const delta = this.#text.push(token);
    if (this.#text.stopped) return this.#stop("stop-string", delta);
    if (this.#generated >= this.#rules.maxTokens) return this.#stop("length", delta);
    if (this.#generated >= this.#rules.room) return this.#stop("context-full", delta);
    return { delta, stop: null };
  }

  /**
   * Ends the text: releases what was held back for a possible stop string (minus one that the
   * last bytes complete) and returns it with the final reason.
   */
  finish(): { rest: string; reason: StopReason | null } {
    const rest = this.#text.finish();
    if (this.#text.stopped && this.#reason !== "abort") this.#reason = "stop-string";
    return { rest, reason: this.check() };
  }

  #stop(reason: StopReason, delta: string): { delta: string; stop: StopReason } {
    this.#reason = reason;
    return { delta, stop: reason };
  }
}
