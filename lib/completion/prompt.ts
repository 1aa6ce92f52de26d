// A completion's prompt as tokens: text or token ids, laid out for fill-in-the-middle when a suffix
// is given, and cut to the context (truncate) or refused (CONTEXT_FULL) when too long.
import type { LoadedModel } from "../core/loaded-model.js";
import { LlamaError } from "../errors.js";
import { toTokenArray } from "../validate.js";

export interface PromptLayout {
  /** Text after the completion (fill-in-the-middle). */
  suffix?: string | null;
  /** Keep the end of a prompt too long for the context. */
  truncate?: boolean;
  /** The tokens the completion may generate (null: no limit), of which truncation keeps room for up to half the context. */
  maxTokens: number | null;
  /** Tokens per sequence. */
  nCtx: number;
}

export function completionPromptTokens(model: LoadedModel, prompt: string | readonly number[] | Int32Array, layout: PromptLayout): Int32Array {
  const given = typeof prompt === "string" ? null : toTokenArray("prompt", prompt);
  for (const t of given ?? []) if (t >= model.nVocab) throw new RangeError(`prompt token ${t} is outside the vocabulary`);
  let tokens: Int32Array;
  if (layout.suffix !== undefined && layout.suffix !== null) {
    const { fimPre, fimSuf, fimMid, bos, addBos } = model.info;
    if (fimPre < 0 || fimSuf < 0 || fimMid < 0) {
      throw new LlamaError("UNSUPPORTED", "suffix (fill-in-the-middle) needs a model with FIM tokens; this one has none");
    }
    // A token prompt's own BOS would land inside the prefix: the BOS goes first, once.
    let before = given ?? model.tokenize(prompt as string, { addSpecial: false });
    if (bos >= 0 && before[0] === bos) before = before.subarray(1);
    const after = model.tokenize(layout.suffix, { addSpecial: false });
    tokens = Int32Array.from([...(addBos && bos >= 0 ? [bos] : []), fimPre, ...before, fimSuf, ...after, fimMid]);
  } else {
    tokens = given ?? model.tokenize(prompt as string, { addSpecial: true });
  }
  if (tokens.length === 0) throw new RangeError("prompt must not be empty");
  const { nCtx } = layout;
  if (tokens.length > nCtx) {
    if (!layout.truncate) {
      throw new LlamaError("CONTEXT_FULL", `the prompt has ${tokens.length} tokens but the context holds ${nCtx} (pass truncate: true to keep its end)`);
    }
    const reserve = Math.min(layout.maxTokens ?? 0, Math.floor(nCtx / 2));
    tokens = tokens.subarray(tokens.length - (nCtx - reserve));
  }
  return tokens;
}
