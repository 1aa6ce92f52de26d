// Reranking as llama-server's /rerank computes it: each document joined to the query (the model's
// "rerank" prompt template, else BOS/EOS/SEP as its format_prompt_rerank joins them) and scored by
// llama.cpp's rank pooling, in a context of its own created on first use. Documents are decoded
// together, one sequence each, as many per decode as fit; calls run one at a time, in call order.
import { BatchBuilder } from "../core/batch.js";
import type { FlashAttention, LlamaContext } from "../core/context.js";
import type { LoadedModel } from "../core/loaded-model.js";
import { hasRankHead } from "../core/model-file.js";
import type { LlamaModel } from "../core/model.js";
import { LlamaError } from "../errors.js";
import { checkOptions, expectString, integer, signal } from "../validate.js";
import { flashAttentionOf } from "./options.js";
import type { RerankList, RerankResult } from "./types.js";

export interface RerankOptions {
  /** Keep the best this many results. Default: all. */
  topN?: number;
  /** Stops the work before the next batch of documents, or mid-decode: the promise rejects with ABORTED. */
  signal?: AbortSignal;
}

/** Most documents one decode scores: the rank context's sequences. */
const SEQUENCES = 16;

/** A document's prompt tokens as llama-server's format_prompt_rerank builds them. */
export function rerankPrompt(model: LoadedModel, query: string, document: string): Int32Array {
  const template = model.chatTemplate("rerank");
  if (template !== null) {
    // Replaced in turn, without String.replace's `$` patterns, as llama.cpp's string_replace_all does.
    const prompt = template.split("{query}").join(query).split("{document}").join(document);
    return model.tokenize(prompt, { addSpecial: false, parseSpecial: true });
  }
  const { bos, eos, sep, addBos, addEos, addSep } = model.info;
  const end = eos >= 0 ? eos : sep;
  if ((addEos && end < 0) || (addSep && sep < 0)) {
    throw new LlamaError("UNSUPPORTED", "the model has no rerank template and its vocabulary no EOS or SEP token to join query and document with");
  }
  const text = (t: string) => model.tokenize(t, { addSpecial: false, parseSpecial: false });
  return Int32Array.from([
    ...(addBos ? [bos] : []),
    ...text(query),
    ...(addEos ? [end] : []),
    ...(addSep ? [sep] : []),
    ...text(document),
    ...(addEos ? [end] : []),
  ]);
}

/** Consecutive prompts in groups of at most `count` prompts and `size` tokens (each prompt fits alone). */
function* groups(prompts: readonly Int32Array[], size: number, count: number): Generator<Int32Array[]> {
  let group: Int32Array[] = [];
  let tokens = 0;
  for (const prompt of prompts) {
    if (group.length === count || tokens + prompt.length > size) {
      yield group;
      group = [];
      tokens = 0;
    }
    group.push(prompt);
    tokens += prompt.length;
  }
  if (group.length > 0) yield group;
}

/** Scores as results, best first (ties in document order), the best `topN` of them. */
function ranked(scores: readonly number[], topN: number | undefined): RerankResult[] {
  const results = scores.map((relevance_score, index) => ({ index, relevance_score }));
  return results.sort((a, b) => b.relevance_score - a.relevance_score).slice(0, topN);
}

export class Reranker {
  readonly #model: LlamaModel;
  readonly #size: number;
  readonly #nThreads: number;
  readonly #flashAttn: FlashAttention;
  #context: Promise<LlamaContext> | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  /**
   * `size`: tokens one document's prompt may have; `nThreads`, `flashAttn`: the generation
   * context's (as llama-server's one context reranks): flash attention changes scores in the fourth
   * decimal with the documents decoded beside one another.
   */
  constructor(model: LlamaModel, size: number, nThreads: number, flashAttn: boolean | "auto" | undefined) {
    this.#model = model;
    this.#size = size;
    this.#nThreads = nThreads;
    this.#flashAttn = flashAttentionOf(flashAttn);
  }

  /** The rank context, created on first use; UNSUPPORTED for a model without a rank head. */
  context(): Promise<LlamaContext> {
    this.#context ??= (async () => {
      if (!(await hasRankHead(this.#model.path))) {
        throw new LlamaError("UNSUPPORTED", "the model has no rank head (no cls.output or cls tensor): it is not a reranker");
      }
      const size = this.#size;
      // One KV buffer for every sequence: a document may take the whole context, or many share it.
      const options = { nCtx: size, nBatch: size, nUbatch: size, nSeqMax: SEQUENCES, kvUnified: true, nThreads: this.#nThreads, flashAttn: this.#flashAttn };
      return this.#model.createContext({ ...options, embeddings: true, pooling: "rank" });
    })();
    return this.#context;
  }

  /** Each document's score, in order, and the tokens their prompts took; `signal` stops it. */
  async scores(query: string, documents: readonly string[], signal?: AbortSignal): Promise<{ scores: number[]; tokens: number }> {
    const context = await this.context();
    const prompts = documents.map((document, i) => {
      const tokens = rerankPrompt(this.#model, query, document);
      if (tokens.length === 0) throw new RangeError(`documents[${i}] and the query make an empty prompt`);
      if (tokens.length > context.nCtxSeq) {
        throw new LlamaError("CONTEXT_FULL", `documents[${i}] makes a prompt of ${tokens.length} tokens but the rerank context holds ${context.nCtxSeq}`);
      }
      return tokens;
    });
    const run = this.#queue.then(async () => {
      const scores: number[] = [];
      for (const group of groups(prompts, context.nCtxSeq, SEQUENCES)) {
        const batch = new BatchBuilder();
        group.forEach((tokens, seq) => tokens.forEach((token, position) => batch.add(token, position, seq, true)));
        context.clear();
        await context.decode(batch.build(), { signal });
        // The first of the head's outputs, as llama-server's score (Qwen3's: the probability of "yes").
        group.forEach((_, seq) => scores.push(context.sequenceEmbeddings(seq)[0]!));
      }
      return { scores, tokens: prompts.reduce((sum, p) => sum + p.length, 0) };
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** llama-server's /rerank response for the arguments of Llama.rerank (checked here). */
  async list(query: string, documents: readonly string[], model: string, options: RerankOptions): Promise<RerankList> {
    expectString("query", query);
    if (!Array.isArray(documents)) throw new TypeError("documents must be an array of strings");
    documents.forEach((d, i) => expectString(`documents[${i}]`, d));
    const o = checkOptions<RerankOptions>("options", options, { topN: integer({ min: 1 }), signal });
    const { scores, tokens } = await this.scores(query, documents, o.signal);
    return { model, object: "list", usage: { prompt_tokens: tokens, total_tokens: tokens }, results: ranked(scores, o.topN) };
  }

  /** Frees the context, once created (or failed). */
  async dispose(): Promise<void> {
    const context = this.#context;
    if (context) await (await context.catch(() => null))?.dispose();
  }
}
