import type { LlamaContext, SampleResult } from "../core/context.js";
import { LlamaError } from "../errors.js";
import { abortError, StopCondition } from "./stopping.js";
import { promptBatches, sequenceBatch } from "../core/batch.js";
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

/**
 * Evaluates `prompt` after what the sequence already holds, then yields sampled tokens one by one.
 * Each step is one native call (decode and sample together). Stops where StopCondition says: at end
 * of generation, at maxTokens, or when the context is full.
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

  // The prompt goes in nBatch-sized batches; only its last token needs logits.
  let result: SampleResult | undefined;
  for (const { batch, sampleIndex } of promptBatches(tokens, position, seqId, context.nBatch)) {
    if (sampleIndex === null) await context.decode(batch, { signal: o.signal });
    else result = await context.decodeAndSample(batch, [{ sampler, index: sampleIndex }], { signal: o.signal });
  }
  position += tokens.length;

  // The last token is sampled, never decoded: one more than the context holds after the prompt.
  const stop = new StopCondition({
    decoder: context.model.createTokenDecoder(),
    isEog: (token) => stopAtEog && context.model.isEog(token),
    stops: [],
    maxTokens,
    room: context.nCtxSeq - position + 1,
    signal: o.signal,
  });
  for (;;) {
    const token = result!.tokens[0]!;
    const { stop: reason } = stop.next(token);
    if (reason === "abort") throw abortError(o.signal);
    if (reason === "eog") return;
    yield token;
    if (reason !== null) return;
    result = await context.decodeAndSample(sequenceBatch(Int32Array.of(token), position, seqId, "last"), [{ sampler, index: 0 }], {
      signal: o.signal,
    });
    position++;
  }
}
