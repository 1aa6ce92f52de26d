/**
 * Prompt and generation speed by llama-bench's method (tools/llama-bench/llama-bench.cpp), through
 * llama-napi's own decode: a test "pp" decodes nPrompt random tokens in nBatch-sized batches, a test
 * "tg" decodes nGen random tokens one at a time; each test gets its own context sized to its tokens,
 * one warmup run (the whole prompt, or one generated token), then `repetitions` timed runs, each from
 * an empty KV cache. Tokens per second are averaged over the runs, with their sample standard
 * deviation, as llama-bench reports them. Time to first token and peak memory come on top.
 *
 * measureSpeed() runs the measurement in a child process, one model at a time, so that peak memory
 * is the model's alone and nothing else in the caller competes for the cores.
 */
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { LlamaContext } from "../core/context.js";
import { LlamaError, type LlamaErrorCode } from "../errors.js";
import { LlamaModel } from "../core/model.js";
import { promptBatches, sequenceBatch } from "../core/batch.js";
import { checkOptions, expectString, func, integer, signal, withAlias } from "../validate.js";

export interface SpeedOptions {
  /** Prompt tokens of the pp test and the TTFT prompt (llama-bench -p). Default 512. */
  nPrompt?: number;
  /** Generated tokens of the tg test (llama-bench -n). Default 128. */
  nGen?: number;
  /** Timed runs per test (llama-bench -r). Default 5. */
  repetitions?: number;
  /** Threads (llama-bench -t). Default: the context's default. */
  nThreads?: number;
  /** @deprecated The older name of nThreads (still accepted). */
  threads?: number;
  /** Logical and physical batch sizes (llama-bench -b, -ub). Default 2048 and 512. */
  nBatch?: number;
  nUbatch?: number;
}

/** Checks for every SpeedOptions field, by name; bench() checks its own options with them too. */
export const speedOptionChecks: { [K in keyof SpeedOptions]-?: (name: string, value: unknown) => unknown } = {
  nPrompt: integer({ min: 1, max: 1 << 20 }),
  nGen: integer({ min: 1, max: 1 << 20 }),
  repetitions: integer({ min: 1, max: 1000 }),
  nThreads: integer({ min: 1, max: 1024 }),
  threads: integer({ min: 1, max: 1024 }),
  nBatch: integer({ min: 1, max: 1 << 20 }),
  nUbatch: integer({ min: 1, max: 1 << 20 }),
};

/** One llama-bench test: its sizes and timings, by llama-bench's field names. */
export interface ThroughputTest {
  n_prompt: number;
  n_gen: number;
  samples_ns: number[];
  samples_ts: number[];
  avg_ns: number;
  stddev_ns: number;
  /** Mean tokens per second over the runs. */
  avg_ts: number;
  stddev_ts: number;
}

export interface TimeToFirstToken {
  /** Prompt tokens decoded before the first token was sampled. */
  nPrompt: number;
  samplesMs: number[];
  meanMs: number;
  stddevMs: number;
}

export interface SpeedResult {
  /** llama.cpp's description of the model, e.g. "llama 1B Q4_0" (llama-bench's model_type). */
  description: string;
  /** Bytes of tensor data (llama-bench's model_size). */
  modelSize: number;
  nParams: number;
  nVocab: number;
  nThreads: number;
  /** @deprecated The older name of nThreads (the same number). */
  threads: number;
  nBatch: number;
  nUbatch: number;
  /** Time to load the model (memory-mapped, so mostly the page cache's state). */
  loadMs: number;
  pp: ThroughputTest;
  tg: ThroughputTest;
  ttft: TimeToFirstToken;
  /** The measuring process's peak resident memory (VmHWM), weights and KV cache included. */
  peakMemoryBytes: number;
}

/** A step the measurement has reached, for progress display. */
export interface SpeedProgress {
  step: "load" | "warmup" | "pp" | "tg" | "ttft";
  done: number;
  total: number;
}

type ResolvedSpeedOptions = Required<Omit<SpeedOptions, "nThreads" | "threads">> & Pick<SpeedOptions, "nThreads">;

function resolve(options: SpeedOptions): ResolvedSpeedOptions {
  const { threads: _alias, ...given } = withAlias("options", options, "nThreads", "threads");
  return { nPrompt: 512, nGen: 128, repetitions: 5, nBatch: 2048, nUbatch: 512, ...given };
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** llama-bench's stdev: the sample standard deviation (n - 1). */
function stddev(values: readonly number[]): number {
  if (values.length <= 1) return 0;
  const m = mean(values);
  const squares = values.reduce((sum, v) => sum + v * v, 0);
  return Math.sqrt(Math.max(0, squares / (values.length - 1) - (m * m * values.length) / (values.length - 1)));
}

function throughput(nPrompt: number, nGen: number, samplesNs: number[]): ThroughputTest {
  const samplesTs = samplesNs.map((ns) => (1e9 * (nPrompt + nGen)) / ns);
  return {
    n_prompt: nPrompt,
    n_gen: nGen,
    samples_ns: samplesNs,
    samples_ts: samplesTs,
    avg_ns: mean(samplesNs),
    stddev_ns: stddev(samplesNs),
    avg_ts: mean(samplesTs),
    stddev_ts: stddev(samplesTs),
  };
}

/** Deterministic token ids (the values do not matter to the speed; llama-bench uses rand()). */
class TokenSource {
  #state: number;
  constructor(
    seed: number,
    private readonly nVocab: number,
  ) {
    this.#state = seed >>> 0 || 1;
  }

  next(): number {
    // xorshift32
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state % this.nVocab;
  }
}

/** llama-bench's test_prompt: the prompt in nBatch-sized batches, BOS first when the model adds one. */
async function promptRun(context: LlamaContext, model: LlamaModel, nPrompt: number, random: TokenSource): Promise<void> {
  for (let done = 0; done < nPrompt; ) {
    const n = Math.min(nPrompt - done, context.nBatch);
    const tokens = Int32Array.from({ length: n }, () => random.next());
    if (done === 0 && model.info.addBos) tokens[0] = model.info.bos;
    await context.decode(sequenceBatch(tokens, done, 0, "last"));
    done += n;
  }
}

/**
 * llama-bench's test_gen, on llama-napi's generation path: nGen single-token decodes from an empty
 * cache, each token sampled greedily from the last (llama-bench feeds random ones; the values do
 * not change the work) by a native run that does not wait for JavaScript between tokens.
 */
async function generationRun(context: LlamaContext, model: LlamaModel, nGen: number, random: TokenSource): Promise<void> {
  const sampler = model.createSampler({ temperature: 0 });
  try {
    const token = model.info.addBos ? model.info.bos : random.next();
    const run = context.generateAhead(
      { token, position: 0, seqId: 0, maxTokens: nGen, maxPosition: context.nCtxSeq, stopAtEog: false },
      sampler,
      () => undefined,
    );
    await run.done;
  } finally {
    sampler.dispose();
  }
}

function nowNs(): bigint {
  return process.hrtime.bigint();
}

/** Peak resident memory of this process in bytes. */
export function peakMemoryBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Not Linux: getrusage's figure (kilobytes) is the same high-water mark.
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Measures a model in this process. measureSpeed() is the isolated entry point. */
export async function runSpeedTests(
  path: string,
  options: SpeedOptions = {},
  onProgress: (progress: SpeedProgress) => void = () => undefined,
): Promise<SpeedResult> {
  const o = resolve(options);
  onProgress({ step: "load", done: 0, total: 1 });
  const loadStart = nowNs();
  const model = await LlamaModel.load(path);
  const loadMs = Number(nowNs() - loadStart) / 1e6;
  const random = new TokenSource(1, model.nVocab);
  const contextOptions = { nBatch: o.nBatch, nUbatch: Math.min(o.nUbatch, o.nBatch), nThreads: o.nThreads };
  try {
    const timed = async (context: LlamaContext, step: "pp" | "tg", run: () => Promise<void>): Promise<number[]> => {
      onProgress({ step: "warmup", done: 0, total: 1 });
      // llama-bench warms up with the whole prompt, or with a single generated token.
      if (step === "pp") await run();
      else await generationRun(context, model, 1, random);
      const samples: number[] = [];
      for (let rep = 0; rep < o.repetitions; rep++) {
        onProgress({ step, done: rep, total: o.repetitions });
        context.clear();
        const start = nowNs();
        await run();
        samples.push(Number(nowNs() - start));
      }
      onProgress({ step, done: o.repetitions, total: o.repetitions });
      return samples;
    };

    const ppContext = await model.createContext({ ...contextOptions, nCtx: o.nPrompt });
    const ttftSamples: number[] = [];
    let ppSamples: number[];
    let threads: number;
    try {
      ppSamples = await timed(ppContext, "pp", () => promptRun(ppContext, model, o.nPrompt, random));
      threads = ppContext.info.nThreads;
      // Time to first token: the prompt, then the first token sampled greedily, from an empty cache.
      const sampler = model.createSampler({ temperature: 0 });
      try {
        for (let rep = 0; rep < o.repetitions; rep++) {
          onProgress({ step: "ttft", done: rep, total: o.repetitions });
          ppContext.clear();
          const prompt = Int32Array.from({ length: o.nPrompt }, () => random.next());
          if (model.info.addBos) prompt[0] = model.info.bos;
          const start = nowNs();
          for (const { batch, sampleIndex } of promptBatches(prompt, 0, 0, ppContext.nBatch)) {
            if (sampleIndex === null) await ppContext.decode(batch);
            else await ppContext.decodeAndSample(batch, [{ sampler, index: sampleIndex }]);
          }
          ttftSamples.push(Number(nowNs() - start) / 1e6);
        }
      } finally {
        sampler.dispose();
      }
    } finally {
      await ppContext.dispose();
    }

    const tgContext = await model.createContext({ ...contextOptions, nCtx: o.nGen });
    let tgSamples: number[];
    try {
      tgSamples = await timed(tgContext, "tg", () => generationRun(tgContext, model, o.nGen, random));
    } finally {
      await tgContext.dispose();
    }

    return {
      description: model.info.description,
      modelSize: model.info.size,
      nParams: model.info.nParams,
      nVocab: model.nVocab,
      nThreads: threads,
      threads,
      nBatch: o.nBatch,
      nUbatch: Math.min(o.nUbatch, o.nBatch),
      loadMs,
      pp: throughput(o.nPrompt, 0, ppSamples),
      tg: throughput(0, o.nGen, tgSamples),
      ttft: { nPrompt: o.nPrompt, samplesMs: ttftSamples, meanMs: mean(ttftSamples), stddevMs: stddev(ttftSamples) },
      peakMemoryBytes: peakMemoryBytes(),
    };
  } finally {
    model.dispose();
  }
}

/** Messages from the measuring child process. */
export type SpeedWorkerMessage =
  | { type: "ready" }
  | { type: "progress"; progress: SpeedProgress }
  | { type: "result"; result: SpeedResult }
  | { type: "error"; message: string; code?: string };

export interface SpeedWorkerJob {
  path: string;
  options: SpeedOptions;
}

/**
 * The child's command: the compiled worker beside this file, or, when running from the TypeScript
 * sources (tests, development), the same worker through vite-node.
 */
function workerCommand(): { modulePath: string; args: string[] } {
  if (__filename.endsWith(".ts")) {
    const viteNode = join(dirname(createRequire(__filename).resolve("vite-node/package.json")), "vite-node.mjs");
    return { modulePath: viteNode, args: [join(__dirname, "speed-worker.ts")] };
  }
  return { modulePath: join(__dirname, "speed-worker.js"), args: [] };
}

/** Measures a model's speed and peak memory in a child process of its own. */
export function measureSpeed(
  path: string,
  options: SpeedOptions = {},
  hooks: { onProgress?: (progress: SpeedProgress) => void; signal?: AbortSignal } = {},
): Promise<SpeedResult> {
  expectString("path", path);
  const checked = withAlias("options", checkOptions<SpeedOptions>("options", options, speedOptionChecks), "nThreads", "threads");
  // Only the known fields travel to the child: anything else could not be serialized.
  const fields = Object.keys(speedOptionChecks) as Array<keyof SpeedOptions>;
  const job: SpeedWorkerJob = { path, options: Object.fromEntries(fields.filter((key) => checked[key] !== undefined).map((key) => [key, checked[key]])) };
  hooks = checkOptions<{ onProgress?: (progress: SpeedProgress) => void; signal?: AbortSignal }>("hooks", hooks, { onProgress: func, signal });
  if (hooks.signal?.aborted) return Promise.reject(new LlamaError("ABORTED", "speed measurement aborted", { cause: hooks.signal.reason }));
  const { modulePath, args } = workerCommand();
  const child = fork(modulePath, args, { stdio: ["ignore", "ignore", "pipe", "ipc"], serialization: "advanced" });
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr = (stderr + data.toString("utf8")).slice(-4000);
  });
  return new Promise<SpeedResult>((resolvePromise, reject) => {
    let outcome: { result: SpeedResult } | { error: Error } | undefined;
    const onAbort = () => {
      outcome ??= { error: new LlamaError("ABORTED", "speed measurement aborted", { cause: hooks.signal?.reason }) };
      child.kill();
    };
    hooks.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("message", (message: SpeedWorkerMessage) => {
      if (message.type === "ready") child.send(job);
      else if (message.type === "progress") hooks.onProgress?.(message.progress);
      else if (message.type === "result") outcome ??= { result: message.result };
      else {
        const error =
          message.code === undefined ? new Error(message.message) : new LlamaError(message.code as LlamaErrorCode, message.message);
        outcome ??= { error };
      }
    });
    child.on("error", (err) => {
      outcome ??= { error: err };
    });
    child.on("exit", (code, killedBy) => {
      hooks.signal?.removeEventListener("abort", onAbort);
      if (outcome && "result" in outcome) resolvePromise(outcome.result);
      else if (outcome) reject(outcome.error);
      else reject(new Error(`the speed measurement of ${path} exited with ${killedBy ?? `code ${code}`}: ${stderr.trim()}`));
    });
  });
}
