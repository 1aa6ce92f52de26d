// Context shift, as llama.cpp's llama-completion --context-shift does it: when a sequence's next
// token would take the last position of its context, the oldest half of the tokens after the first
// n_keep leave the KV cache and those after them move back, and generation goes on. The scheduler
// shifts (shiftSequence); this file holds the option, its check and llama.cpp's arithmetic.
import type { LlamaContext } from "../core/context.js";
import { LlamaError } from "../errors.js";
import { checkOptions, integer } from "../validate.js";

/** What a context shift keeps. */
export interface ContextShiftOptions {
  /**
   * Prompt tokens a shift never discards, after the BOS (which is always kept where the model adds
   * one): llama.cpp's --keep / n_keep. -1: the whole prompt. Default 0.
   */
  keep?: number;
}

/** true or { keep }: shift the context when it is full; false: end the generation there (finish_reason "length"). */
export type ContextShiftOption = boolean | ContextShiftOptions;

/** A sequence's context must hold at least this many tokens to shift (llama-completion raises a smaller -c to it). */
export const MIN_SHIFT_CONTEXT = 8;

export function checkContextShift(name: string, value: unknown): void {
  if (typeof value === "boolean") return;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${name} must be a boolean or an object { keep }, got ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`);
  }
  checkOptions<ContextShiftOptions>(name, value, { keep: integer({ min: -1 }) });
}

/** The keep count of an option (checked), or null where it turns shifting off. */
export function contextShiftOf(option: ContextShiftOption | undefined): { keep: number } | null {
  if (option === undefined || option === false) return null;
  return { keep: option === true ? 0 : (option.keep ?? 0) };
}

/** Throws unless `context` can shift its sequences' positions, and each holds enough tokens to. */
export function checkCanShift(context: LlamaContext, name: string): void {
  if (!context.canShift()) throw new LlamaError("UNSUPPORTED", `${name}: this model's memory cannot shift positions`);
  if (context.nCtxSeq < MIN_SHIFT_CONTEXT) {
    throw new RangeError(`${name} needs a context of at least ${MIN_SHIFT_CONTEXT} tokens per sequence, got ${context.nCtxSeq}`);
  }
}

/**
 * llama-completion's n_keep: the tokens at the start of the sequence that a shift never discards.
 * A keep of -1 or beyond the prompt keeps the prompt; otherwise keep tokens after the BOS. At most
 * nCtxSeq - 3, so that each shift discards at least one token (llama-completion never gets there:
 * it refuses a prompt longer than n_ctx - 4).
 */
export function tokensToKeep(keep: number, promptLength: number, addBos: boolean, nCtxSeq: number): number {
  const n = keep < 0 || keep > promptLength ? promptLength : keep + (addBos ? 1 : 0);
  return Math.max(0, Math.min(n, nCtxSeq - 3));
}

/** Whether a sequence holding `cached` tokens must shift before it decodes the next: llama-completion's n_past + 1 >= n_ctx. */
export function mustShift(cached: number, nCtxSeq: number): boolean {
  return cached + 1 >= nCtxSeq;
}

/**
 * Shifts sequence `seqId`, whose KV cache holds `cached` (by position), until it has room for the
 * next token, as llama-completion does: n_left = n_past - n_keep, n_discard = n_left / 2, then
 * llama_memory_seq_rm(n_keep, n_keep + n_discard) and llama_memory_seq_add(n_keep + n_discard,
 * n_past, -n_discard). Updates `cached` to match. Returns the number of tokens discarded.
 */
export function shiftSequence(context: LlamaContext, seqId: number, cached: number[], nKeep: number): number {
  let discarded = 0;
  while (mustShift(cached.length, context.nCtxSeq)) {
    const nPast = cached.length;
    const nDiscard = Math.floor((nPast - nKeep) / 2);
    if (nDiscard <= 0) throw new LlamaError("CONTEXT_FULL", `cannot shift the context: it holds ${nPast} tokens and keeps ${nKeep}`);
    if (!context.removeTokens(seqId, nKeep, nKeep + nDiscard)) {
      throw new LlamaError("UNSUPPORTED", "this model's memory cannot remove tokens from the middle of a sequence");
    }
    context.shiftPositions(seqId, nKeep + nDiscard, nPast, -nDiscard);
    cached.splice(nKeep, nDiscard);
    discarded += nDiscard;
  }
  return discarded;
}
