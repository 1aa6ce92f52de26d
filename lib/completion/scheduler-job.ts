// What the scheduler (scheduler.ts) asks of a request, the counters it keeps, and how much of a
// request's prompt a sequence's cache holds.
import type { LlamaSampler } from "../core/sampler.js";
import type { AdapterSet } from "./adapters.js";

export interface TokenLogprob {
  /** Log-probability of the chosen token. */
  logprob: number;
  /** The most likely tokens and their log-probabilities, best first. */
  top: Array<{ token: number; logprob: number }>;
}

/**
 * A request as the scheduler runs it (completion/generation.ts makes them). The job decides when it
 * stops; the scheduler asks it, feeds it tokens, and tells it when it is done with it.
 */
export interface SchedulerJob {
  readonly prompt: Int32Array;
  readonly sampler: LlamaSampler;
  /** Alternatives per token to report (undefined: no log-probabilities). */
  readonly logprobs: number | undefined;
  /** Aborts a decode of this job alone mid-way. */
  readonly signal: AbortSignal | undefined;
  /** The LoRA adapters its tokens are decoded with. */
  readonly adapters: AdapterSet;
  /** Tokens at its sequence's start that a context shift keeps (context-shift.ts); null: it never shifts. */
  readonly shiftKeep: number | null;
  /** Takes a sampled token; false when generation ends with it. */
  accept(token: number, logprob: TokenLogprob | undefined): boolean;
  /** How many more tokens accept() takes at most: 0 once the job stopped or was aborted. */
  tokensLeft(): number;
  /**
   * Asked after each token: while the job's reader has not taken it, a promise that settles when it
   * has (it must also settle on abort); the job gets no new token before. Otherwise null.
   */
  waitForReader(): Promise<void> | null;
  /** Tokens a speculative run drafted for the job, and how many of them it took. */
  countDraft(drafted: number, accepted: number): void;
  /** The scheduler is done with the job: it stopped (or was aborted), or failed with `error`. */
  end(error?: unknown): void;
}

/** Counters of the batching loop. */
export interface SchedulerStats {
  /** Decode calls made. */
  batches: number;
  /** Tokens decoded. */
  tokens: number;
  /** The most sequences one decode call carried. */
  maxSequencesPerBatch: number;
}

/** How many tokens `cached` and `prompt` share from the start. */
export function commonPrefix(cached: readonly number[], prompt: Int32Array): number {
  const n = Math.min(cached.length, prompt.length);
  let i = 0;
  while (i < n && cached[i] === prompt[i]) i++;
  return i;
}
