/**
 * Speculative decoding's speed on a model: greedy generation with a draft (Llama.load's `draft`)
 * against the same generation without one, in turns, in one process; tokens per second of each,
 * the median of the turns' ratios, and the share of drafted tokens accepted. Greedy, with the end
 * of text banned so that every run generates `nGen` tokens; both give the same tokens, so the two
 * speeds are of the same work.
 */
import { Llama } from "../completion/llama.js";
import type { DraftOptions } from "../completion/options.js";
import { checkOptions, expectObject, expectString, integer, signal, string } from "../validate.js";
import type { CompletionUsage } from "../completion/types.js";

export interface SpeculativeSpeedOptions {
  /** The draft: a draft model ({ modelPath, nDraft, pMin }) or { type: "ngram", nDraft, ngramSize }. */
  draft: DraftOptions;
  /** Tokens generated per run. Default 128. */
  nGen?: number;
  /** Runs of each. Default 3. */
  repetitions?: number;
  nThreads?: number;
  /** The prompt. Default: a short story told twice, which n-gram lookup can draft from. */
  prompt?: string;
  signal?: AbortSignal;
}

export interface SpeculativeSpeed {
  nGen: number;
  /** Tokens per second of each run, without and with the draft. */
  plainTps: number[];
  draftTps: number[];
  /** Median over the runs of draft / plain. */
  ratio: number;
  draftTokens: number;
  draftAccepted: number;
}

const DEFAULT_PROMPT =
  "The lighthouse keeper climbed the stairs every evening, lit the lamp, and watched the ships pass the rocks. " +
  "In the morning he wrote the names of the ships in his book.\n" +
  "The lighthouse keeper climbed the stairs every evening,";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** One greedy run: tokens per second from the first token to the last, and the draft counts. */
async function run(llm: Llama, prompt: string, nGen: number, signal: AbortSignal | undefined) {
  const info = llm.model.info;
  const noEnd: Record<number, number> = { [info.eos]: -Infinity, ...(info.eot >= 0 ? { [info.eot]: -Infinity } : {}) };
  let first = 0;
  let usage: CompletionUsage | undefined;
  const stream = llm.createCompletion(prompt, { maxTokens: nGen, temperature: 0, logitBias: noEnd, signal, stream: true, streamOptions: { includeUsage: true } });
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    else if (first === 0 && chunk.choices[0]?.text) first = performance.now();
  }
  return { tps: ((usage?.completion_tokens ?? nGen) - 1) / ((performance.now() - first) / 1000), usage };
}

/** Measures speculative decoding with `options.draft` on the model at `path` (see the top of this file). */
export async function measureSpeculative(path: string, options: SpeculativeSpeedOptions): Promise<SpeculativeSpeed> {
  expectString("path", path);
  const o = checkOptions<SpeculativeSpeedOptions>("options", options, {
    draft: (name, value) => expectObject(name, value),
    nGen: integer({ min: 2, max: 1 << 16 }),
    repetitions: integer({ min: 1, max: 100 }),
    nThreads: integer({ min: 1, max: 1024 }),
    prompt: string,
    signal,
  });
  if (o.draft === undefined) throw new TypeError("options.draft is required");
  const nGen = o.nGen ?? 128;
  const prompt = o.prompt ?? DEFAULT_PROMPT;
  const load = { modelPath: path, nCtx: nGen + 1024, nThreads: o.nThreads };
  const plain = await Llama.load(load);
  let drafted: Llama | null = null;
  try {
    drafted = await Llama.load({ ...load, draft: o.draft });
    const result: SpeculativeSpeed = { nGen, plainTps: [], draftTps: [], ratio: 0, draftTokens: 0, draftAccepted: 0 };
    for (let i = 0; i < (o.repetitions ?? 3); i++) {
      for (const [llm, into] of i % 2 === 0 ? ([[plain, result.plainTps], [drafted, result.draftTps]] as const) : ([[drafted, result.draftTps], [plain, result.plainTps]] as const)) {
        const { tps, usage } = await run(llm, prompt, nGen, o.signal);
        into.push(tps);
        result.draftTokens += usage?.draft_tokens ?? 0;
        result.draftAccepted += usage?.draft_accepted ?? 0;
      }
    }
    result.ratio = median(result.draftTps.map((t, i) => t / result.plainTps[i]!));
    return result;
  } finally {
    await drafted?.dispose();
    await plain.dispose();
  }
}
