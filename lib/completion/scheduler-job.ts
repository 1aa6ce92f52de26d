// What the scheduler (scheduler.ts) asks of a request, what it keeps per sequence, the counters it
// keeps, and what it reads from a sequence for a step: the prompt it shares, its draft request, a
// token's log-probability, whether its cache is still what the slot remembers.
import type { LlamaContext, SampleResult } from "../core/context.js";
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

/** A sequence of the scheduler's context and the request it runs. */
export interface Slot {
  seqId: number;
  /** Tokens whose KV entries this sequence holds, in position order. */
  cached: number[];
  /** The key of the adapters those entries were decoded with. */
  cachedWith: string;
  /** Steps the slot had work but sat out for requests with other adapters. */
  waited: number;
  /** How many of `cached` a new prompt may reuse: all, until a context shift leaves the kept ones only. */
  reusable: number;
  job: SchedulerJob | null;
  /** Prompt tokens still to evaluate, from this index of job.prompt. */
  promptCursor: number;
  /** The last sampled token, not yet in the KV cache. */
  pendingToken: number | null;
  /** Until this resolves, the job's reader has not taken its last token: the slot waits. */
  paused: Promise<void> | null;
}

/**
 * A generating slot's draft request: up to as many tokens as its job takes after the pending one,
 * and as its sequence has room for (a job that shifts keeps the last cell free).
 */
export function draftRequest(slot: Slot, nCtxSeq: number): { history: Int32Array; nDraft: number } | undefined {
  const job = slot.job;
  if (job === null || slot.pendingToken === null) return undefined;
  const room = nCtxSeq - 1 - (job.shiftKeep === null ? 0 : 1) - slot.cached.length;
  const nDraft = Math.min(job.tokensLeft() - 1, room);
  return nDraft > 0 ? { history: Int32Array.from(slot.cached), nDraft } : undefined;
}

/** The log-probability of the k-th token of a decodeAndSample result, with `n` alternatives (undefined: none asked). */
export function logprobAt(result: SampleResult, k: number, n: number | undefined): TokenLogprob | undefined {
  if (n === undefined || !result.logprobs || !result.top) return undefined;
  const top = result.top[k]!;
  return { logprob: result.logprobs[k]!, top: Array.from(top.ids.subarray(0, n), (id, i) => ({ token: id, logprob: top.logprobs[i]! })) };
}

/**
 * Whether the slot's sequence still holds exactly the tokens the slot remembers (by position): the
 * context is public, and a clear() or a decode behind the scheduler's back must not be mistaken
 * for a cached prompt.
 */
export function cacheIntact(context: LlamaContext, slot: Slot): boolean {
  if (slot.cached.length === 0) return true;
  try {
    const [first, last] = context.positionRange(slot.seqId);
    return first === 0 && last === slot.cached.length - 1;
  } catch {
    return false;
  }
}

/** Empties the slot's sequence and what it remembers of it. */
export function forgetCache(context: LlamaContext, slot: Slot): void {
  slot.cached = [];
  slot.reusable = Infinity;
  try {
    context.removeTokens(slot.seqId, 0, -1);
  } catch {
    // The context is gone; nothing to forget.
  }
}
