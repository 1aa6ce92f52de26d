// Speculative decoding's setup: Llama.load's draft option made into llama.cpp's drafter on the
// generation context (LlamaContext.setDrafter). The scheduler's lone-sequence runs then speculate.
import type { LlamaContext } from "../core/context.js";
import { LlamaModel } from "../core/model.js";
import type { DraftOptions } from "./options.js";

/** What a draft holds besides the context's drafter: a draft model and its context. */
export interface Draft {
  dispose(): Promise<void>;
}

/**
 * Attaches the drafter `options` asks for to `context`. A draft model is loaded with a context of
 * its own, as many sequences and tokens as `context`; a vocabulary unlike the model's is an
 * INCOMPATIBLE_DRAFT LlamaError.
 */
export async function attachDraft(
  context: LlamaContext,
  options: DraftOptions,
  load: { nGpuLayers: number; nThreads: number; signal?: AbortSignal },
): Promise<Draft> {
  if (options.type === "ngram") {
    context.setDrafter({ type: "ngram", nDraft: options.nDraft, ngramSize: options.ngramSize });
    return { dispose: async () => {} };
  }
  const model = await LlamaModel.load(options.modelPath, { nGpuLayers: options.nGpuLayers ?? load.nGpuLayers, signal: load.signal });
  let draftContext: LlamaContext | null = null;
  try {
    draftContext = await model.createContext({
      nCtx: context.nCtx,
      nBatch: context.nBatch,
      nSeqMax: context.nSeqMax,
      nThreads: load.nThreads,
    });
    context.setDrafter({ type: "model", nDraft: options.nDraft, pMin: options.pMin }, draftContext);
  } catch (error) {
    await draftContext?.dispose();
    model.dispose();
    throw error;
  }
  const held = draftContext;
  return {
    dispose: async () => {
      await held.dispose();
      model.dispose();
    },
  };
}
