// One generation: a prompt and a sampler run through the scheduler until StopCondition says why it
// stops. It releases text as stop strings allow, with each token's log-probability once all of the
// text that token completes is out, and settles with the text and OpenAI's finish reason.
import type { LoadedModel } from "../core/loaded-model.js";
import { NO_ADAPTERS, type AdapterSet, type LoraOptions } from "./adapters.js";
import type { LlamaSampler } from "../core/sampler.js";
import { tokensToKeep } from "./context-shift.js";
import type { Scheduler, SchedulerJob, TokenLogprob } from "./scheduler.js";
import type { JobMedia } from "./scheduler-job.js";
import { abortError, finishReasonOf, StopCondition } from "./stopping.js";
import type { FinishReason } from "./types.js";

/** A request as Llama prepares it, ready to run, with the id and time of its response. */
/** Where a media item comes from: a chat part's URL or audio, or a completion's bytes. */
export type MediaSource = ({ url: string } | { audio: string; format: string } | { bytes: Uint8Array }) & { name: string };

/** A request's media, read and tokenized with its prompt when the generation starts (media.ts). */
export interface PendingMedia {
  text: string;
  addSpecial: boolean;
  sources: MediaSource[];
}

export interface Prepared {
  /** The generation, less the signal and hooks a stream adds; its sampler is freed when it ends. */
  request: Omit<GenerationRequest, "signal" | "onDelta" | "waitForReader">;
  /** The caller's signal. */
  signal: AbortSignal | undefined;
  /** The request's LoRA adapters (undefined: Llama.load's). */
  lora: LoraOptions[] | undefined;
  /** Images or audio to read and tokenize with the prompt when the generation starts (media.ts). */
  media?: PendingMedia;
  id: string;
  created: number;
}

/** A generated token behind released text, with its log-probability. */
export interface ReleasedToken {
  token: number;
  /** The text the token completed, as released: cut where a stop string begins. */
  text: string;
  /** False when a stop string cut the token's text. */
  whole: boolean;
  /** Where that text starts in the generated text. */
  offset: number;
  logprob: TokenLogprob | undefined;
}

export interface GenerationRequest {
  prompt: Int32Array;
  /** The prompt's media chunks (images, audio), where `prompt` holds their placeholders. */
  media?: JobMedia;
  sampler: LlamaSampler;
  stops: readonly string[];
  /** Tokens to generate at most (Infinity: until the end of generation or a full context). */
  maxTokens: number;
  /** Shift the context when it is full, keeping `keep` prompt tokens after the BOS (context-shift.ts). Absent or null: stop there. */
  contextShift?: { keep: number } | null;
  /** Alternatives per token to report with log-probabilities (undefined: none). */
  logprobs?: number;
  /** The LoRA adapters to decode with. Default: none. */
  adapters?: AdapterSet;
  /** Special tokens whose text shows in the output (a chat's tool call markers). */
  specialTokens?: ReadonlySet<number>;
  signal?: AbortSignal;
  /** Text released to the caller, and (with logprobs) the tokens whose text it completes. */
  onDelta?: (delta: string, released: ReleasedToken[]) => void;
  /** A stream's reader: while it has not taken the last chunk, a promise that settles when it has (or on abort). */
  waitForReader?: () => Promise<void> | null;
}

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  completionTokens: number;
  /** Tokens drafted for speculative decoding, and how many of them were taken (0 without a drafter). */
  draftTokens: number;
  draftAccepted: number;
  /** With logprobs: the tokens behind the text, in order (none from a stop string on). */
  released: ReleasedToken[];
}

/** Runs one generation through the scheduler; settles once it stops (or fails). */
export function runGeneration(scheduler: Scheduler, model: LoadedModel, request: GenerationRequest): Promise<GenerationResult> {
  const generation = new Generation(model, scheduler.nCtxSeq, request);
  if (request.maxTokens === 0) generation.end();
  else scheduler.submit(generation);
  return generation.done;
}

class Generation implements SchedulerJob {
  readonly prompt: Int32Array;
  readonly media: JobMedia | undefined;
  readonly sampler: LlamaSampler;
  readonly logprobs: number | undefined;
  readonly signal: AbortSignal | undefined;
  readonly adapters: AdapterSet;
  readonly shiftKeep: number | null;
  readonly done: Promise<GenerationResult>;
  readonly #request: GenerationRequest;
  readonly #stop: StopCondition;
  /** Tokens whose text is not all released yet (with logprobs). */
  readonly #held: ReleasedToken[] = [];
  readonly #released: ReleasedToken[] = [];
  #drafted = 0;
  #accepted = 0;
  #settle!: { resolve: (result: GenerationResult) => void; reject: (error: unknown) => void };

  constructor(model: LoadedModel, nCtxSeq: number, request: GenerationRequest) {
    this.#request = request;
    this.prompt = request.prompt;
    this.media = request.media;
    this.sampler = request.sampler;
    this.logprobs = request.logprobs;
    this.signal = request.signal;
    this.adapters = request.adapters ?? NO_ADAPTERS;
    const shift = request.contextShift ?? null;
    this.shiftKeep = shift === null ? null : tokensToKeep(shift.keep, request.prompt.length, model.info.addBos, nCtxSeq);
    this.#stop = new StopCondition({
      decoder: model.createTokenDecoder({ specialTokens: request.specialTokens }),
      isEog: (token) => model.isEog(token),
      stops: request.stops,
      maxTokens: request.maxTokens,
      // A context that shifts is no limit.
      room: shift === null ? nCtxSeq - request.prompt.length : Infinity,
      signal: request.signal,
    });
    this.done = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
  }

  get generated(): number {
    return this.#stop.generated;
  }

  tokensLeft(): number {
    return this.#stop.tokensLeft;
  }

  waitForReader(): Promise<void> | null {
    return this.#request.waitForReader?.() ?? null;
  }

  accept(token: number, logprob: TokenLogprob | undefined): boolean {
    const offset = this.#stop.decoded.length;
    const { delta, stop } = this.#stop.next(token);
    if (stop === "abort" || stop === "eog") return false;
    let entries: ReleasedToken[] = [];
    if (this.logprobs !== undefined) {
      this.#held.push({ token, text: this.#stop.decoded.slice(offset), whole: stop !== "stop-string", offset, logprob });
      entries = this.#release(false);
    }
    if (delta || entries.length > 0) this.#request.onDelta?.(delta, entries);
    return stop === null;
  }

  countDraft(drafted: number, accepted: number): void {
    this.#drafted += drafted;
    this.#accepted += accepted;
  }

  end(error?: unknown): void {
    if (error !== undefined) {
      this.#settle.reject(error);
      return;
    }
    const { rest, reason } = this.#stop.finish();
    if (reason === "abort") {
      this.#settle.reject(abortError(this.signal));
      return;
    }
    const entries = this.#release(true);
    if (rest || entries.length > 0) this.#request.onDelta?.(rest, entries);
    this.#settle.resolve({
      text: this.#stop.text,
      // The scheduler ends a job without error only once it stopped; a request for no tokens never ran.
      finishReason: finishReasonOf(reason ?? "length"),
      completionTokens: this.#stop.generated,
      draftTokens: this.#drafted,
      draftAccepted: this.#accepted,
      released: this.#released,
    });
  }

  /**
   * The held tokens whose text is now all released; with `final`, the rest too, cut to the
   * released text. Text held back for a stop string may turn out to be one, and never come out.
   */
  #release(final: boolean): ReleasedToken[] {
    const end = this.#stop.text.length;
    let n = 0;
    while (n < this.#held.length && this.#held[n]!.offset < end && this.#held[n]!.offset + this.#held[n]!.text.length <= end) n++;
    const out = this.#held.splice(0, n);
    if (final) {
      for (const entry of this.#held.splice(0)) {
        if (entry.offset < end) out.push({ ...entry, text: entry.text.slice(0, end - entry.offset), whole: entry.offset + entry.text.length <= end });
      }
    }
    this.#released.push(...out);
    return out;
  }
}
