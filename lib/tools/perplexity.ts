/**
 * Perplexity and the divergence of one model from another, by llama-perplexity's method so that the
 * figures are comparable with llama.cpp's: the text is tokenized once (BOS added as the model asks),
 * cut into chunks of nCtx tokens, each chunk evaluated from an empty KV cache with its first token
 * replaced by BOS, and only the second half of each chunk scored (every scored token has at least
 * nCtx/2 tokens of context).
 *
 * The comparison evaluates both models chunk by chunk in lockstep and compares their logits as they
 * come, so nothing is written to disk (llama-perplexity's --kl-divergence-base file is gigabytes for
 * a large vocabulary). It computes KL divergence exactly, where llama-perplexity stores the base
 * log-probabilities in 16 bits and skips probabilities below e^-16: figures agree to about 1%.
 */
import type { LlamaContext } from "../core/context.js";
import { LlamaError } from "../errors.js";
import { LlamaModel } from "../core/model.js";
import { BatchBuilder } from "../core/batch.js";
import { checkOptions, expectString, func, integer, signal, withAlias } from "../validate.js";

export interface PerplexityOptions {
  /** Tokens per chunk (llama-perplexity's -c). Default 512. */
  nCtx?: number;
  /** Most tokens per decode (llama-perplexity's -b, capped at nCtx). Default 2048. */
  nBatch?: number;
  /** Evaluate at most this many chunks (llama-perplexity's --chunks). Default: all. */
  nChunks?: number;
  /** Threads for evaluation. Default: the context's default. */
  nThreads?: number;
  /** @deprecated The older name of nThreads (still accepted). */
  threads?: number;
  /** Called after each chunk. */
  onProgress?: (chunksDone: number, chunksTotal: number) => void;
  signal?: AbortSignal;
}

/** A mean with llama-perplexity's uncertainty (standard error of the mean). */
export interface Estimate {
  value: number;
  uncertainty: number;
}

export interface PerplexityResult {
  /** exp(mean negative log-likelihood of the scored tokens), llama-perplexity's "Final estimate". */
  perplexity: number;
  /** Its uncertainty, the "+/-" figure. */
  uncertainty: number;
  /** Mean negative log-likelihood in nats. */
  meanNll: number;
  nCtx: number;
  nChunks: number;
  /** Tokens scored: nChunks × (nCtx - nCtx/2 - 1). */
  nScored: number;
}

/** Order statistics of per-token values, llama-perplexity's percentiles (linear interpolation). */
export interface Distribution {
  min: number;
  p0_1: number;
  p1: number;
  p5: number;
  p10: number;
  p25: number;
  median: number;
  p75: number;
  p90: number;
  p95: number;
  p99: number;
  p99_9: number;
  max: number;
}

export interface ModelComparison {
  base: PerplexityResult;
  candidate: PerplexityResult;
  /** Mean of ln(PPL(candidate)/PPL(base)) over the scored tokens. */
  lnPerplexityRatio: Estimate;
  /** KL(base ‖ candidate) per scored token, in nats. */
  klDivergence: Estimate & { distribution: Distribution };
  /** Change of the probability of the correct token, candidate minus base. */
  deltaP: Estimate & { rms: Estimate; distribution: Distribution };
  /** Fraction of scored tokens where both models' most likely token is the same. */
  sameTop: Estimate;
}

interface ChunkPlan {
  tokens: Int32Array;
  nCtx: number;
  /** Tokens per decode of one chunk: nCtx, or less when nBatch is smaller. */
  nBatch: number;
  /** Chunks evaluated together, one sequence each, when nBatch holds several (as llama-perplexity does). */
  nSeq: number;
  nChunks: number;
  /** The first position scored in each chunk. */
  first: number;
  /** Replaces the first token of each chunk, or -1 when the model adds no BOS. */
  bos: number;
}

type Resolved = Required<Omit<PerplexityOptions, "onProgress" | "signal" | "nThreads" | "threads" | "nChunks">> &
  Pick<PerplexityOptions, "onProgress" | "signal" | "nThreads" | "nChunks">;

function checkPerplexityOptions(options: PerplexityOptions): Resolved {
  const o = checkOptions<PerplexityOptions>("options", options, {
    nCtx: integer({ min: 8, max: 1 << 20 }),
    nBatch: integer({ min: 1, max: 1 << 20 }),
    nChunks: integer({ min: 1 }),
    nThreads: integer({ min: 1, max: 1024 }),
    threads: integer({ min: 1, max: 1024 }),
    onProgress: func,
    signal,
  });
  const { threads: _alias, ...given } = withAlias("options", o, "nThreads", "threads");
  return { ...given, nCtx: o.nCtx ?? 512, nBatch: o.nBatch ?? 2048 };
}

function planChunks(model: LlamaModel, text: string, o: Resolved): ChunkPlan {
  let tokens = model.tokenize(text, { addSpecial: true });
  // llama-perplexity refuses models that append EOS; scoring without it is the same measurement.
  if (model.info.addEos && tokens.length > 0 && tokens[tokens.length - 1] === model.info.eos) tokens = tokens.subarray(0, -1);
  const { nCtx } = o;
  if (tokens.length < 2 * nCtx) {
    throw new RangeError(`the text has ${tokens.length} tokens; perplexity with nCtx ${nCtx} needs at least ${2 * nCtx}`);
  }
  const available = Math.floor(tokens.length / nCtx);
  const nChunks = o.nChunks === undefined ? available : Math.min(o.nChunks, available);
  return {
    tokens,
    nCtx,
    nBatch: Math.min(o.nBatch, nCtx),
    nSeq: Math.max(1, Math.min(Math.floor(o.nBatch / nCtx), nChunks)),
    nChunks,
    first: Math.floor(nCtx / 2),
    bos: model.info.addBos ? model.info.bos : -1,
  };
}

/**
 * Evaluates chunks [firstChunk, firstChunk + count) in every context (one context after the other:
 * each uses all the threads), one sequence per chunk, and hands over the logits of each scored
 * position, one row per context, with the token that follows it.
 */
async function evaluateChunks(
  contexts: readonly LlamaContext[],
  plan: ChunkPlan,
  firstChunk: number,
  count: number,
  signal: AbortSignal | undefined,
  score: (rows: Float32Array[], next: number) => void,
): Promise<void> {
  for (const context of contexts) context.clear();
  for (let batchStart = 0; batchStart < plan.nCtx; batchStart += plan.nBatch) {
    const length = Math.min(plan.nBatch, plan.nCtx - batchStart);
    const builder = new BatchBuilder();
    for (let seq = 0; seq < count; seq++) {
      const start = (firstChunk + seq) * plan.nCtx + batchStart;
      for (let k = 0; k < length; k++) {
        const token = k === 0 && batchStart === 0 && plan.bos >= 0 ? plan.bos : plan.tokens[start + k]!;
        builder.add(token, batchStart + k, seq, batchStart + k >= plan.first);
      }
    }
    const batch = builder.build();
    for (const context of contexts) await context.decode(batch, { signal });
    for (let seq = 0; seq < count; seq++) {
      const chunkStart = (firstChunk + seq) * plan.nCtx;
      // The last position predicts past the chunk: not scored.
      for (let position = Math.max(batchStart, plan.first); position < batchStart + length && position < plan.nCtx - 1; position++) {
        const rows = contexts.map((context) => context.logits(seq * length + position - batchStart));
        score(rows, plan.tokens[chunkStart + position + 1]!);
      }
    }
  }
}

/** Runs every chunk, nSeq at a time, reporting progress after each group. */
async function evaluateAll(
  contexts: readonly LlamaContext[],
  plan: ChunkPlan,
  o: Resolved,
  score: (rows: Float32Array[], next: number) => void,
): Promise<void> {
  for (let chunk = 0; chunk < plan.nChunks; chunk += plan.nSeq) {
    const count = Math.min(plan.nSeq, plan.nChunks - chunk);
    await evaluateChunks(contexts, plan, chunk, count, o.signal, score);
    o.onProgress?.(chunk + count, plan.nChunks);
  }
}

/** max, log-sum-exp and argmax of a row of logits; `exps` receives exp(logit - max). */
function softmaxStats(row: Float32Array, exps: Float64Array): { max: number; logSum: number; argmax: number } {
  let max = row[0]!;
  let argmax = 0;
  for (let i = 1; i < row.length; i++) {
    if (row[i]! > max) {
      max = row[i]!;
      argmax = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const e = Math.exp(row[i]! - max);
    exps[i] = e;
    sum += e;
  }
  return { max, logSum: Math.log(sum), argmax };
}

/** Sums for a mean and llama-perplexity's uncertainty of it. */
class RunningMean {
  sum = 0;
  sumSquares = 0;
  count = 0;

  add(value: number): void {
    this.sum += value;
    this.sumSquares += value * value;
    this.count++;
  }

  estimate(): Estimate {
    if (this.count === 0) return { value: 0, uncertainty: 0 };
    const mean = this.sum / this.count;
    const variance = this.sumSquares / this.count - mean * mean;
    return { value: mean, uncertainty: variance > 0 && this.count > 1 ? Math.sqrt(variance / (this.count - 1)) : 0 };
  }
}

function perplexityResult(nll: RunningMean, plan: ChunkPlan): PerplexityResult {
  const { value, uncertainty } = nll.estimate();
  const perplexity = Math.exp(value);
  return {
    perplexity,
    uncertainty: perplexity * uncertainty,
    meanNll: value,
    nCtx: plan.nCtx,
    nChunks: plan.nChunks,
    nScored: nll.count,
  };
}

/** llama-perplexity's percentile: linear interpolation between the sorted values around it. */
function percentile(sorted: Float64Array, fraction: number): number {
  const p = fraction * (sorted.length - 1);
  const i = Math.floor(p);
  const next = sorted[Math.min(i + 1, sorted.length - 1)]!;
  return (1 - (p - i)) * sorted[i]! + (p - i) * next;
}

function distribution(values: Float64Array): Distribution {
  const sorted = values.slice().sort();
  const n = sorted.length;
  const median = n % 2 === 0 ? 0.5 * (sorted[n / 2]! + sorted[n / 2 - 1]!) : sorted[(n - 1) / 2]!;
  return {
    min: sorted[0]!,
    p0_1: percentile(sorted, 0.001),
    p1: percentile(sorted, 0.01),
    p5: percentile(sorted, 0.05),
    p10: percentile(sorted, 0.1),
    p25: percentile(sorted, 0.25),
    median,
    p75: percentile(sorted, 0.75),
    p90: percentile(sorted, 0.9),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    p99_9: percentile(sorted, 0.999),
    max: sorted[n - 1]!,
  };
}

async function withModel<T>(source: LlamaModel | string, use: (model: LlamaModel) => Promise<T>): Promise<T> {
  if (typeof source !== "string") return use(source);
  const model = await LlamaModel.load(expectString("model", source));
  try {
    return await use(model);
  } finally {
    model.dispose();
  }
}

async function withContexts<T>(models: readonly LlamaModel[], plan: ChunkPlan, nThreads: number | undefined, use: (contexts: LlamaContext[]) => Promise<T>): Promise<T> {
  const contexts: LlamaContext[] = [];
  try {
    for (const model of models) {
      const nBatch = plan.nBatch * plan.nSeq;
      contexts.push(
        await model.createContext({
          nCtx: plan.nCtx * plan.nSeq,
          nSeqMax: plan.nSeq,
          nBatch,
          nUbatch: Math.min(512, nBatch),
          nThreads,
        }),
      );
    }
    return await use(contexts);
  } finally {
    for (const context of contexts) await context.dispose();
  }
}

/** The perplexity of a model on a text, as llama-perplexity computes it. */
export async function perplexity(model: LlamaModel | string, text: string, options: PerplexityOptions = {}): Promise<PerplexityResult> {
  expectString("text", text);
  const o = checkPerplexityOptions(options);
  return withModel(model, async (loaded) => {
    const plan = planChunks(loaded, text, o);
    const exps = new Float64Array(loaded.nVocab);
    const nll = new RunningMean();
    await withContexts([loaded], plan, o.nThreads, (contexts) =>
      evaluateAll(contexts, plan, o, ([row], next) => {
        const { max, logSum } = softmaxStats(row!, exps);
        nll.add(max + logSum - row![next]!);
      }),
    );
    return perplexityResult(nll, plan);
  });
}

/**
 * Compares a candidate model (a quantization, say) with a base model on a text: both perplexities,
 * the KL divergence of the candidate's next-token distribution from the base's, the change of the
 * correct token's probability, and how often both agree on the most likely token. Both models stay
 * loaded for the pass; they must share a vocabulary.
 */
export async function compareModels(
  base: LlamaModel | string,
  candidate: LlamaModel | string,
  text: string,
  options: PerplexityOptions = {},
): Promise<ModelComparison> {
  expectString("text", text);
  const o = checkPerplexityOptions(options);
  return withModel(base, (baseModel) =>
    withModel(candidate, async (candidateModel) => {
      if (baseModel.nVocab !== candidateModel.nVocab) {
        throw new LlamaError(
          "MODEL_LOAD_FAILED",
          `the models do not share a vocabulary (${baseModel.nVocab} and ${candidateModel.nVocab} tokens)`,
        );
      }
      const plan = planChunks(baseModel, text, o);
      const nVocab = baseModel.nVocab;
      const baseExps = new Float64Array(nVocab);
      const candidateExps = new Float64Array(nVocab);
      const baseNll = new RunningMean();
      const candidateNll = new RunningMean();
      const nllRatio = new RunningMean();
      const kl = new RunningMean();
      const deltaP = new RunningMean();
      const deltaPSquared = new RunningMean();
      const sameTop = new RunningMean();
      const total = plan.nChunks * (plan.nCtx - plan.first - 1);
      const klValues = new Float64Array(total);
      const deltaPValues = new Float64Array(total);
      let scored = 0;
      await withContexts([baseModel, candidateModel], plan, o.nThreads, (contexts) =>
        evaluateAll(contexts, plan, o, ([baseRow, candidateRow], next) => {
          const b = softmaxStats(baseRow!, baseExps);
          const c = softmaxStats(candidateRow!, candidateExps);
          const baseShift = b.max + b.logSum;
          const candidateShift = c.max + c.logSum;
          // KL(P‖Q) = Σ p·(log p − log q), with log p = logit − (max + logSum).
          const baseNorm = Math.exp(-b.logSum);
          let divergence = 0;
          for (let i = 0; i < nVocab; i++) {
            const logP = baseRow![i]! - baseShift;
            const logQ = candidateRow![i]! - candidateShift;
            divergence += baseExps[i]! * baseNorm * (logP - logQ);
          }
          const nllBase = baseShift - baseRow![next]!;
          const nllCandidate = candidateShift - candidateRow![next]!;
          const dp = Math.exp(-nllCandidate) - Math.exp(-nllBase);
          baseNll.add(nllBase);
          candidateNll.add(nllCandidate);
          nllRatio.add(nllCandidate - nllBase);
          kl.add(divergence);
          deltaP.add(dp);
          deltaPSquared.add(dp * dp);
          sameTop.add(b.argmax === c.argmax ? 1 : 0);
          klValues[scored] = divergence;
          deltaPValues[scored] = dp;
          scored++;
        }),
      );
      const meanSquare = deltaPSquared.estimate();
      const rms = Math.sqrt(meanSquare.value);
      const agreement = sameTop.estimate().value;
      return {
        base: perplexityResult(baseNll, plan),
        candidate: perplexityResult(candidateNll, plan),
        lnPerplexityRatio: nllRatio.estimate(),
        klDivergence: { ...kl.estimate(), distribution: distribution(klValues) },
        deltaP: {
          ...deltaP.estimate(),
          rms: { value: rms, uncertainty: rms > 0 ? (0.5 / rms) * meanSquare.uncertainty : 0 },
          distribution: distribution(deltaPValues),
        },
        // A proportion's standard error, as llama-perplexity reports it.
        sameTop: { value: agreement, uncertainty: Math.sqrt((agreement * (1 - agreement)) / Math.max(1, scored - 1)) },
      };
    }),
  );
}
