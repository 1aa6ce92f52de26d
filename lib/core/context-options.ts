// The options of a context and of its decodes (LlamaContext in context.ts), and llama.cpp's codes
// for the named ones.
import type { LlamaSampler } from "./sampler.js";

export type PoolingType = "unspecified" | "none" | "mean" | "cls" | "last" | "rank";
export type FlashAttention = "auto" | "on" | "off";

export interface ContextOptions {
  /** Context size in tokens (0: the model's training context). Default 512, as llama-cpp-python. */
  nCtx?: number;
  /** Most tokens one decode() takes. Default 512. */
  nBatch?: number;
  /** Physical batch size. Default 512. */
  nUbatch?: number;
  /** Parallel sequences (distinct KV sequences). Default 1. */
  nSeqMax?: number;
  /** Threads for generation. Default: see defaultThreads(). */
  nThreads?: number;
  /** Threads for prompt processing. Default: nThreads. */
  nThreadsBatch?: number;
  /** Compute embeddings. Default false. */
  embeddings?: boolean;
  /** How embeddings are pooled per sequence. Default: the model's. */
  pooling?: PoolingType;
  /** Flash attention. Default "auto". */
  flashAttn?: FlashAttention;
  /** KV cache types, e.g. "f16" (default), "q8_0". */
  typeK?: string;
  typeV?: string;
  /** One KV buffer shared by all sequences. Default false. */
  kvUnified?: boolean;
}

export interface DecodeOptions {
  signal?: AbortSignal;
}

export interface SampleRequest {
  sampler: LlamaSampler;
  /** The batch index whose logits to sample. */
  index: number;
  /**
   * With a drafter attached (setDrafter): draft up to `nDraft` tokens after the index's token, from
   * `history`, the tokens its sequence holds before it. The drafted tokens join the batch; the
   * sample yields those the sampler takes, plus one (SampleResult.counts).
   */
  draft?: { history: Int32Array; nDraft: number };
}

export interface DecodeAndSampleOptions extends DecodeOptions {
  /** Also return the chosen token's log-probability and this many top alternatives. */
  logprobs?: number;
}

export const poolingCodes: Record<PoolingType, number> = { unspecified: -1, none: 0, mean: 1, cls: 2, last: 3, rank: 4 };
export const flashCodes: Record<FlashAttention, number> = { auto: -1, off: 0, on: 1 };
