// Embeddings: a second context, pooled (mean unless the model says otherwise), created on first use;
// texts are embedded one at a time, in call order.
import type { LlamaContext } from "../core/context.js";
import type { LlamaModel } from "../core/model.js";
import { LlamaError } from "../errors.js";
import { expectString } from "../validate.js";
import type { EmbeddingList } from "./types.js";

function l2normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const v of vector) sum += v * v;
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  return vector.map((v) => v * scale);
}

/** The texts of an embedding request: one string or an array of them. */
export function embeddingTexts(input: string | readonly string[]): readonly string[] {
  const texts = typeof input === "string" ? [input] : input;
  if (!Array.isArray(texts)) throw new TypeError("input must be a string or an array of strings");
  texts.forEach((t, i) => expectString(`input[${i}]`, t));
  return texts;
}

export class Embedder {
  readonly #model: LlamaModel;
  readonly #size: number;
  readonly #nThreads: number;
  #context: Promise<LlamaContext> | null = null;
  #queue: Promise<unknown> = Promise.resolve();

  /** `size`: tokens one text may have; `nThreads`: as the generation context's. */
  constructor(model: LlamaModel, size: number, nThreads: number) {
    this.#model = model;
    this.#size = size;
    this.#nThreads = nThreads;
  }

  /** The embedding context, created on first use. */
  context(): Promise<LlamaContext> {
    this.#context ??= (async () => {
      const size = this.#size;
      const options = { nCtx: size, nBatch: size, nUbatch: size, nThreads: this.#nThreads, embeddings: true };
      const context = await this.#model.createContext({ ...options, pooling: "unspecified" });
      if (context.info.poolingType !== 0) return context;
      await context.dispose();
      return this.#model.createContext({ ...options, pooling: "mean" });
    })();
    return this.#context;
  }

  /** The vectors of texts (checked by embeddingTexts) and how many tokens they took; `signal` stops it. */
  async embed(texts: readonly string[], normalize: boolean, signal?: AbortSignal): Promise<{ vectors: Float32Array[]; tokens: number }> {
    const context = await this.context();
    const run = this.#queue.then(async () => {
      const vectors: Float32Array[] = [];
      let total = 0;
      for (const text of texts) {
        const tokens = this.#model.tokenize(text, { addSpecial: true });
        if (tokens.length === 0) throw new RangeError("cannot embed an empty text");
        if (tokens.length > context.nCtxSeq) {
          throw new LlamaError("CONTEXT_FULL", `the input has ${tokens.length} tokens but the embedding context holds ${context.nCtxSeq}`);
        }
        context.clear();
        await context.decode({ tokens, logits: "all" }, { signal });
        const vector = context.sequenceEmbeddings(0);
        vectors.push(normalize ? l2normalize(vector) : vector);
        total += tokens.length;
      }
      return { vectors, tokens: total };
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** OpenAI's embeddings response. */
  async list(texts: readonly string[], model: string, signal?: AbortSignal): Promise<EmbeddingList> {
    const { vectors, tokens } = await this.embed(texts, false, signal);
    return {
      object: "list",
      data: vectors.map((v, index) => ({ object: "embedding", embedding: Array.from(v), index })),
      model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  }

  /** Frees the context, once created (or failed). */
  async dispose(): Promise<void> {
    const context = this.#context;
    if (context) await (await context.catch(() => null))?.dispose();
  }
}
