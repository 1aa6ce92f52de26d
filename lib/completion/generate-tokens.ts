import type { LlamaContext } from "../core/context.js";
import { LlamaError } from "../errors.js";
import type { NativeBatch } from "../core/native.js";
import type { LlamaSampler } from "../core/sampler.js";
import { checkOptions, expectHandle, integer, boolean, signal, toTokenArray } from "../validate.js";

export interface GenerateOptions {
  /** Stop after this many tokens. Default: until end of generation or a full context. */
  maxTokens?: number;
  /** The KV sequence to use. Default 0. */
  seqId?: number;
  /** Stop at end-of-generation tokens (not yielded). Default true. */
  stopAtEog?: boolean;
  signal?: AbortSignal;
}

/** Consecutive tokens of one sequence from `position` on, with logits for the last one if asked. */
function sequenceBatch(tokens: Int32Array, position: number, seqId: number, lastLogits: boolean): NativeBatch {
  const logits = new Uint8Array(tokens.length);
  if (lastLogits) logits[tokens.length - 1] = 1;
  return {
    tokens,
    positions: Int32Array.from(tokens, (_, i) => position + i),
    seqIds: new Int32Array(tokens.length).fill(seqId),
    logits,
  };
}

/**
 * Evaluates `prompt` after what the sequence already holds, then yields sampled tokens one by one.
 * Each step is one native call (decode and sample together). Stops at end of generation, at
 * maxTokens, or when the context is full.
 */
export async function* generateTokens(
  context: LlamaContext,
  sampler: LlamaSampler,
  prompt: Int32Array | readonly number[],
  options: GenerateOptions = {},
): AsyncGenerator<number, void, undefined> {
  expectHandle("context", context, "LlamaContext", "nCtxSeq");
  expectHandle("sampler", sampler, "LlamaSampler", "seed");
  const tokens = toTokenArray("prompt", prompt);
  if (tokens.length === 0) throw new RangeError("prompt must hold at least one token");
  const o = checkOptions<GenerateOptions>("options", options, {
    maxTokens: integer({ min: 0 }),
    seqId: integer({ min: 0, max: context.nSeqMax - 1 }),
    stopAtEog: boolean,
    signal,
  });
  const seqId = o.seqId ?? 0;
  const maxTokens = o.maxTokens ?? Infinity;
  const stopAtEog = o.stopAtEog ?? true;
  let position = context.maxPosition(seqId) + 1;
  const room = context.nCtxSeq - position;
  if (tokens.length > room) {
    throw new LlamaError("CONTEXT_FULL", `the prompt has ${tokens.length} tokens but the context has room for ${room}`);
  }
  if (maxTokens === 0) return;

  // The prompt goes in nBatch-sized chunks; only its last token needs logits.
  const chunk = context.nBatch;
  const headLength = Math.floor((tokens.length - 1) / chunk) * chunk;
  for (let start = 0; start < headLength; start += chunk) {
    await context.decode(sequenceBatch(tokens.subarray(start, start + chunk), position, seqId, false), { signal: o.signal });
    position += chunk;
  }
  const last = tokens.subarray(headLength);
  const lastBatch = sequenceBatch(last, position, seqId, true);
  let result = await context.decodeAndSample(lastBatch, [{ sampler, index: last.length - 1 }], { signal: o.signal });
  position += last.length;

  for (let produced = 0; ; ) {
    const token = result.tokens[0]!;
    if (stopAtEog && context.model.isEog(token)) return;
    yield token;
    produced++;
    if (produced >= maxTokens || position >= context.nCtxSeq) return;
    result = await context.decodeAndSample(sequenceBatch(Int32Array.of(token), position, seqId, true), [{ sampler, index: 0 }], {
      signal: o.signal,
    });
    position++;
  }
}
