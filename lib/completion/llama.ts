// The completion API in llama-cpp-python's shape: Llama.load, createCompletion (streaming or
// not), createChatCompletion, createEmbedding/embed, with OpenAI's response objects.
import { randomUUID } from "node:crypto";
import { defaultThreads, holdVerboseLog, maxParallelSequences } from "../core/backend.js";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatLogprobs,
  ChatMessage,
  Completion,
  CompletionChunk,
  CompletionLogprobs,
  EmbeddingList,
  FinishReason,
} from "./types.js";
import { MAX_CONTEXT_TOKENS, type LlamaContext } from "../core/context.js";
import { LlamaError } from "../errors.js";
import { jsonObjectGrammar, jsonSchemaGrammar } from "./json-grammar.js";
import { LlamaModel } from "../core/model.js";
import { applyChatTemplate, builtinChatTemplates } from "../core/chat-template.js";
import type { LlamaSampler, SamplerOptions } from "../core/sampler.js";
import { Scheduler, type SchedulerStats, type TokenLogprob } from "./scheduler.js";
import { checkEndpoints } from "../core/rpc.js";
import { StopTextStream } from "./text-stream.js";
import {
  boolean,
  checkOptions,
  expectObject,
  expectString,
  func,
  integer,
  number,
  signal,
  string,
  toTokenArray,
} from "../validate.js";

export interface LlamaLoadOptions {
  /** Path of the GGUF model. Required. */
  modelPath: string;
  /** Load the tokenizer only: tokenize/detokenize work, generation does not. Default false. */
  vocabOnly?: boolean;
  /** Context window of each sequence, in tokens (0: the model's training context). Default 512. */
  nCtx?: number;
  /** Most tokens per decode. Default 512. */
  nBatch?: number;
  /** Physical batch size. Default 512. */
  nUbatch?: number;
  /** Generation threads. Default: defaultThreads() (all cores up to 4, half above). */
  nThreads?: number;
  /** Prompt-processing threads. Default: nThreads. */
  nThreadsBatch?: number;
  /** Layers offloaded to the GPU (-1: all). Default 0. */
  nGpuLayers?: number;
  /** Default seed of sampling (a call's seed overrides it). Default: random per call. */
  seed?: number;
  /** Print llama.cpp's log to stderr. Default false (llama-cpp-python: true). */
  verbose?: boolean;
  /** Prepare for createEmbedding()/embed() at load. Default false: the embedding context is created on first use. */
  embedding?: boolean;
  /** Map the model file. Default true. */
  useMmap?: boolean;
  /** Lock the model in RAM. Default false. */
  useMlock?: boolean;
  /** Flash attention: true, false or "auto". Default "auto", llama.cpp's default (llama-cpp-python: false). */
  flashAttn?: boolean | "auto";
  /** Requests decoded together as sequences of one context (continuous batching). Default 1: requests queue. */
  nParallel?: number;
  /** Chat template: a built-in name (see builtinChatTemplates()) or a template string. Default: the model's. */
  chatTemplate?: string;
  /** ggml rpc-server workers ("host:port") that take offloaded layers (see nGpuLayers). */
  rpcServers?: string[];
  /** Share of the offloaded layers per device: RPC servers first, then local GPUs. */
  tensorSplit?: number[];
  onProgress?: (progress: number) => void;
  signal?: AbortSignal;
}

export interface MirostatSampling {
  mode: 0 | 1 | 2;
  tau?: number;
  eta?: number;
}

export interface SamplingOptions {
  /** 0: greedy. Default 0.8 (completions), 0.2 (chat), as llama-cpp-python. */
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  typicalP?: number;
  repeatPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  repeatLastN?: number;
  mirostat?: MirostatSampling;
  seed?: number;
  /** { tokenId: bias }; -Infinity bans a token. */
  logitBias?: Record<number, number>;
  /** A GBNF grammar the output must follow. */
  grammar?: string;
  /** Stop strings: the text ends before the first one. */
  stop?: string | string[];
  /** Tokens to generate (0 or null: until end of generation or a full context). */
  maxTokens?: number | null;
  signal?: AbortSignal;
}

export interface CompletionOptions extends SamplingOptions {
  /** Report the log-probabilities of each token and this many alternatives. */
  logprobs?: number | null;
  /** Prepend the prompt to the returned text. */
  echo?: boolean;
  /** Text after the completion: fill-in-the-middle, for models with FIM tokens. */
  suffix?: string | null;
  /** Drop the start of a prompt too long for the context instead of failing with CONTEXT_FULL. */
  truncate?: boolean;
  stream?: boolean;
}

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object"; schema?: Record<string, unknown> }
  | { type: "json_schema"; json_schema: { name?: string; schema: Record<string, unknown>; strict?: boolean } };

export interface ChatCompletionOptions extends SamplingOptions {
  messages: ChatMessage[];
  /** Report log-probabilities of the chosen tokens. */
  logprobs?: boolean;
  /** Alternatives per token with logprobs. */
  topLogprobs?: number;
  responseFormat?: ResponseFormat;
  stream?: boolean;
}

export interface EmbedOptions {
  /** Scale each vector to unit length. Default false. */
  normalize?: boolean;
}

const samplingChecks = {
  temperature: number({ min: 0 }),
  topP: number({ min: 0, max: 1 }),
  topK: integer({ min: 0 }),
  minP: number({ min: 0, max: 1 }),
  typicalP: number({ min: 0, max: 1 }),
  repeatPenalty: number({ min: 0 }),
  frequencyPenalty: number({ min: -2, max: 2 }),
  presencePenalty: number({ min: -2, max: 2 }),
  repeatLastN: integer({ min: -1 }),
  mirostat: (name: string, value: unknown) => {
    const m = expectObject(name, value);
    if (m.mode !== 0 && m.mode !== 1 && m.mode !== 2) throw new RangeError(`${name}.mode must be 0, 1 or 2, got ${String(m.mode)}`);
    if (m.tau !== undefined) number({ min: 0 })(`${name}.tau`, m.tau);
    if (m.eta !== undefined) number({ min: 0 })(`${name}.eta`, m.eta);
  },
  seed: integer({ min: 0, max: 0xfffffffe }),
  logitBias: (name: string, value: unknown) => {
    expectObject(name, value);
  },
  grammar: string,
  stop: (name: string, value: unknown) => {
    const list = Array.isArray(value) ? value : [value];
    list.forEach((s, i) => expectString(Array.isArray(value) ? `${name}[${i}]` : name, s));
  },
  maxTokens: (name: string, value: unknown) => {
    if (value !== null) integer({ min: 0 })(name, value);
  },
  signal,
};

/** Channels whose reader waits in next(). */
const awaitedChannels = new Set<Channel<unknown>>();

/**
 * A channel from the scheduler's callbacks to an async iterator. It is pulled, as a Python
 * generator: generation starts when the consumer first asks and goes on only while it asks for more
 * (see `demand`), so that a consumer that stops reading wastes at most the token in flight.
 */
class Channel<T> implements AsyncIterableIterator<T> {
  #items: T[] = [];
  #error: unknown = undefined;
  #closed = false;
  #wake: (() => void) | null = null;
  #demand: { promise: Promise<void>; resolve: () => void } | null = null;
  #start: (() => void) | null;
  readonly #onReturn: () => void;

  /** `start`: called on the first `next()`; `onReturn`: the consumer stopped reading before the end. */
  constructor(start: () => void, onReturn: () => void) {
    this.#start = start;
    this.#onReturn = onReturn;
  }

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  close(error?: unknown): void {
    this.#closed = true;
    this.#error = error;
    this.#wake?.();
    this.#satisfy();
  }

  /**
   * Null when the consumer waits for an item; otherwise a promise that resolves once it has taken
   * every item and asks for the next one, or has returned.
   */
  demand(): Promise<void> | null {
    if (this.#closed || (this.#items.length === 0 && this.#wake !== null)) return null;
    if (this.#demand === null) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#demand = { promise, resolve };
    }
    return this.#demand.promise;
  }

  #satisfy(): void {
    this.#demand?.resolve();
    this.#demand = null;
  }

  async next(): Promise<IteratorResult<T>> {
    const start = this.#start;
    this.#start = null;
    start?.();
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) return { value: item, done: false };
      if (this.#closed) {
        if (this.#error !== undefined) {
          const error = this.#error;
          this.#error = undefined;
          throw error;
        }
        return { value: undefined, done: true };
      }
      const wait = new Promise<void>((resolve) => (this.#wake = resolve));
      this.#satisfy();
      // Only this channel holds a reader suspended here: hold the channel meanwhile, or the GC
      // would take both as a stream dropped unfinished.
      awaitedChannels.add(this);
      try {
        await wait;
      } finally {
        awaitedChannels.delete(this);
      }
      this.#wake = null;
    }
  }

  async return(): Promise<IteratorResult<T>> {
    this.#start = null;
    if (!this.#closed) this.#onReturn();
    this.#closed = true;
    this.#items = [];
    this.#satisfy();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

/** A generated token behind released text, with its log-probability. */
interface ReleasedToken {
  token: number;
  /** The text the token completed, as released: cut where a stop string begins. */
  text: string;
  /** False when a stop string cut the token's text. */
  whole: boolean;
  /** Where that text starts in the generated text. */
  offset: number;
  logprob: TokenLogprob | undefined;
}

/** Stops the generation of a stream whose reader dropped it unfinished. */
const abandonedStreams = new FinalizationRegistry<AbortController>((stop) => stop.abort());

interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  completionTokens: number;
  /** With logprobs: the tokens behind the text, in order (none from a stop string on). */
  released: ReleasedToken[];
}

interface GenerationRequest {
  prompt: Int32Array;
  sampling: SamplingOptions;
  /** maxTokens when the caller gives none. */
  defaultMaxTokens: number | null;
  extraStops?: string[];
  logprobs?: number;
  /** Text released to the caller, and (with logprobs) the tokens whose text it completes. */
  onDelta?: (delta: string, released: ReleasedToken[]) => void;
  /** A stream's Channel.demand: generation waits for its reader. */
  demand?: () => Promise<void> | null;
  signal?: AbortSignal;
}

function unixSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function toList(stop: string | string[] | undefined): string[] {
  return stop === undefined ? [] : Array.isArray(stop) ? stop : [stop];
}

function l2normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const v of vector) sum += v * v;
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  return vector.map((v) => v * scale);
}

/** A loaded model ready for completions, chat and embeddings, as llama-cpp-python's Llama. */
export class Llama {
  readonly modelPath: string;
  readonly model: LlamaModel;
  readonly options: Readonly<LlamaLoadOptions>;
  #context: LlamaContext | null;
  #scheduler: Scheduler | null;
  #embeddingContext: Promise<LlamaContext> | null = null;
  #embeddingQueue: Promise<unknown> = Promise.resolve();
  #chatFallbackNoted = false;
  #disposed = false;
  /** A verbose Llama keeps llama.cpp's log on stderr until it is disposed. */
  #releaseLog: () => void = () => {};

  private constructor(options: LlamaLoadOptions, model: LlamaModel, context: LlamaContext | null) {
    this.options = Object.freeze({ ...options });
    this.modelPath = options.modelPath;
    this.model = model;
    this.#context = context;
    this.#scheduler = context ? new Scheduler(context) : null;
  }

  static async load(options: LlamaLoadOptions): Promise<Llama> {
    const o = checkOptions<LlamaLoadOptions>("options", options, {
      modelPath: string,
      vocabOnly: boolean,
      nCtx: integer({ min: 0, max: MAX_CONTEXT_TOKENS }),
      nBatch: integer({ min: 1, max: 1 << 20 }),
      nUbatch: integer({ min: 1, max: 1 << 20 }),
      nThreads: integer({ min: 1, max: 1024 }),
      nThreadsBatch: integer({ min: 1, max: 1024 }),
      nGpuLayers: integer({ min: -1 }),
      seed: integer({ min: 0, max: 0xfffffffe }),
      verbose: boolean,
      embedding: boolean,
      useMmap: boolean,
      useMlock: boolean,
      flashAttn: (name: string, value: unknown) => {
        if (value !== "auto" && typeof value !== "boolean") throw new TypeError(`${name} must be true, false or "auto"`);
      },
      nParallel: integer({ min: 1, max: maxParallelSequences() }),
      chatTemplate: string,
      rpcServers: (name, value) => checkEndpoints(name, value),
      tensorSplit: (name, value) => {
        if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of numbers`);
        value.forEach((v, i) => number({ min: 0 })(`${name}[${i}]`, v));
      },
      onProgress: func,
      signal,
    });
    if (o.modelPath === undefined) throw new TypeError("options.modelPath is required");
    const releaseLog = o.verbose ? holdVerboseLog() : () => {};
    let model: LlamaModel | null = null;
    let context: LlamaContext | null = null;
    try {
      model = await LlamaModel.load(o.modelPath, {
        nGpuLayers: o.nGpuLayers ?? 0,
        useMmap: o.useMmap ?? true,
        useMlock: o.useMlock ?? false,
        vocabOnly: o.vocabOnly ?? false,
        rpcServers: o.rpcServers,
        tensorSplit: o.tensorSplit,
        onProgress: o.onProgress,
        signal: o.signal,
      });
      let llama: Llama;
      if (o.vocabOnly) {
        llama = new Llama(o, model, null);
      } else {
        const nParallel = o.nParallel ?? 1;
        const nCtx = o.nCtx === 0 ? model.info.nCtxTrain : (o.nCtx ?? 512);
        const nThreads = o.nThreads ?? defaultThreads();
        // One context holds every sequence.
        if (nCtx * nParallel > MAX_CONTEXT_TOKENS) {
          throw new RangeError(`options.nCtx × options.nParallel must be at most ${MAX_CONTEXT_TOKENS}, got ${nCtx} × ${nParallel}`);
        }
        context = await model.createContext({
          nCtx: nCtx * nParallel,
          nBatch: o.nBatch ?? 512,
          nUbatch: o.nUbatch ?? 512,
          nSeqMax: nParallel,
          nThreads,
          nThreadsBatch: o.nThreadsBatch ?? nThreads,
          flashAttn: o.flashAttn === undefined || o.flashAttn === "auto" ? "auto" : o.flashAttn ? "on" : "off",
        });
        llama = new Llama(o, model, context);
        if (o.embedding) await llama.#embeddings();
      }
      llama.#releaseLog = releaseLog;
      return llama;
    } catch (err) {
      await context?.dispose();
      model?.dispose();
      releaseLog();
      throw err;
    }
  }

  /** Tokens per sequence. */
  get nCtx(): number {
    return this.#context?.nCtxSeq ?? 0;
  }

  get nVocab(): number {
    return this.model.nVocab;
  }

  /** The model's GGUF metadata. */
  get metadata(): Record<string, string> {
    return this.model.metadata();
  }

  /** Completions waiting for a free sequence. */
  get queued(): number {
    return this.#scheduler?.queued ?? 0;
  }

  /** Completions being generated now. */
  get active(): number {
    return this.#scheduler?.active ?? 0;
  }

  /** Counters of the batching loop (decode calls, tokens, most sequences in one call). */
  get stats(): Readonly<SchedulerStats> {
    return this.#scheduler?.stats ?? { batches: 0, tokens: 0, maxSequencesPerBatch: 0 };
  }

  /** The generation context (null for vocabOnly), for the low-level API. */
  get context(): LlamaContext | null {
    return this.#context;
  }

  tokenize(text: string, options: { addBos?: boolean; special?: boolean } = {}): number[] {
    const o = checkOptions<{ addBos?: boolean; special?: boolean }>("options", options, { addBos: boolean, special: boolean });
    return Array.from(this.model.tokenize(text, { addSpecial: o.addBos ?? true, parseSpecial: o.special ?? false }));
  }

  detokenize(tokens: readonly number[] | Int32Array, options: { special?: boolean } = {}): string {
    return this.model.detokenize(tokens, { unparseSpecial: options.special ?? false });
  }

  #live(): Scheduler {
    if (this.#disposed) throw new LlamaError("DISPOSED", "this Llama has been disposed");
    if (this.#scheduler === null) throw new LlamaError("UNSUPPORTED", "a vocabOnly Llama cannot generate");
    return this.#scheduler;
  }

  #sampler(sampling: SamplingOptions, defaultTemperature: number, grammar?: string): LlamaSampler {
    const samplerOptions: SamplerOptions = {
      temperature: sampling.temperature ?? defaultTemperature,
      topP: sampling.topP ?? 0.95,
      topK: sampling.topK ?? 40,
      minP: sampling.minP ?? 0.05,
      typicalP: sampling.typicalP ?? 1,
      repeatPenalty: sampling.repeatPenalty ?? 1,
      frequencyPenalty: sampling.frequencyPenalty ?? 0,
      presencePenalty: sampling.presencePenalty ?? 0,
      repeatLastN: sampling.repeatLastN ?? 64,
      seed: sampling.seed ?? this.options.seed,
      logitBias: sampling.logitBias,
      grammar: grammar ?? sampling.grammar,
    };
    if (sampling.mirostat && sampling.mirostat.mode !== 0) {
      samplerOptions.mirostat = { mode: sampling.mirostat.mode, tau: sampling.mirostat.tau, eta: sampling.mirostat.eta };
    }
    return this.model.createSampler(samplerOptions);
  }

  /** Runs one generation through the scheduler. */
  #generate(request: GenerationRequest, sampler: LlamaSampler): Promise<GenerationResult> {
    const scheduler = this.#live();
    const context = this.#context!;
    const maxTokens = request.sampling.maxTokens === undefined ? request.defaultMaxTokens : request.sampling.maxTokens;
    const limit = maxTokens === null || maxTokens === 0 ? Infinity : maxTokens;
    const stream = new StopTextStream(this.model.createTokenDecoder(), [...toList(request.sampling.stop), ...(request.extraStops ?? [])]);
    let generated = 0;
    // With logprobs, a token is reported with the text it completes, once all of it is released:
    // text held back for a stop string may turn out to be one, and then never comes out.
    const held: ReleasedToken[] = [];
    const released: ReleasedToken[] = [];
    const release = (final: boolean): ReleasedToken[] => {
      const end = stream.text.length;
      let n = 0;
      while (n < held.length && held[n]!.offset < end && held[n]!.offset + held[n]!.text.length <= end) n++;
      const out = held.splice(0, n);
      if (final) {
        for (const entry of held.splice(0)) {
          if (entry.offset < end) out.push({ ...entry, text: entry.text.slice(0, end - entry.offset), whole: entry.offset + entry.text.length <= end });
        }
      }
      released.push(...out);
      return out;
    };
    // Tokens the request may still take: maxTokens, and what the context has room for.
    const tokensLeft = () => Math.min(limit, context.nCtxSeq - request.prompt.length) - generated;
    return new Promise<GenerationResult>((resolve, reject) => {
      const settle = (finishReason: FinishReason) => {
        const rest = stream.finish();
        const entries = release(true);
        if (rest || entries.length > 0) request.onDelta?.(rest, entries);
        resolve({ text: stream.text, finishReason: stream.stopped ? "stop" : finishReason, completionTokens: generated, released });
      };
      let finishReason: FinishReason = "length";
      if (limit === 0) {
        settle("length");
        return;
      }
      scheduler.submit({
        prompt: request.prompt,
        sampler,
        logprobs: request.logprobs,
        signal: request.signal,
        onToken: (token, logprob) => {
          if (this.model.isEog(token)) {
            finishReason = "stop";
            return "done";
          }
          generated++;
          const offset = stream.decoded.length;
          const delta = stream.push(token);
          let entries: ReleasedToken[] = [];
          if (request.logprobs !== undefined) {
            held.push({ token, text: stream.decoded.slice(offset), whole: !stream.stopped, offset, logprob });
            entries = release(false);
          }
          if (delta || entries.length > 0) request.onDelta?.(delta, entries);
          if (stream.stopped) return "done";
          if (tokensLeft() <= 0) {
            finishReason = "length";
            return "done";
          }
          return "continue";
        },
        tokensLeft: () => Math.max(0, tokensLeft()),
        demand: request.demand,
        onEnd: (reason) => settle(reason === "context-full" ? "length" : finishReason),
        onError: reject,
      });
    });
  }

  #completionPrompt(prompt: string | readonly number[] | Int32Array, o: CompletionOptions, maxTokens: number | null): Int32Array {
    const given = typeof prompt === "string" ? null : toTokenArray("prompt", prompt);
    for (const t of given ?? []) if (t >= this.nVocab) throw new RangeError(`prompt token ${t} is outside the vocabulary`);
    let tokens: Int32Array;
    if (o.suffix !== undefined && o.suffix !== null) {
      const { fimPre, fimSuf, fimMid, bos, addBos } = this.model.info;
      if (fimPre < 0 || fimSuf < 0 || fimMid < 0) {
        throw new LlamaError("UNSUPPORTED", "suffix (fill-in-the-middle) needs a model with FIM tokens; this one has none");
      }
      // A token prompt's own BOS would land inside the prefix: the BOS goes first, once.
      let before = given ?? this.model.tokenize(prompt as string, { addSpecial: false });
      if (bos >= 0 && before[0] === bos) before = before.subarray(1);
      const after = this.model.tokenize(o.suffix, { addSpecial: false });
      tokens = Int32Array.from([...(addBos && bos >= 0 ? [bos] : []), fimPre, ...before, fimSuf, ...after, fimMid]);
    } else {
      tokens = given ?? this.model.tokenize(prompt as string, { addSpecial: true });
    }
    if (tokens.length === 0) throw new RangeError("prompt must not be empty");
    if (tokens.length > this.nCtx) {
      if (!o.truncate) {
        throw new LlamaError(
          "CONTEXT_FULL",
          `the prompt has ${tokens.length} tokens but the context holds ${this.nCtx} (pass truncate: true to keep its end)`,
        );
      }
      const reserve = Math.min(maxTokens ?? 0, Math.floor(this.nCtx / 2));
      tokens = tokens.subarray(tokens.length - (this.nCtx - reserve));
    }
    return tokens;
  }

  /** A completion of `prompt`, returned whole; with `stream: true`, an async iterable of chunks. */
  createCompletion(prompt: string | readonly number[] | Int32Array, options: CompletionOptions & { stream: true }): AsyncIterableIterator<CompletionChunk>;
  createCompletion(prompt: string | readonly number[] | Int32Array, options?: CompletionOptions & { stream?: false }): Promise<Completion>;
  createCompletion(
    prompt: string | readonly number[] | Int32Array,
    options: CompletionOptions = {},
  ): Promise<Completion> | AsyncIterableIterator<CompletionChunk> {
    if (options?.stream === true) return this.#streamCompletion(prompt, options);
    return (async () => this.#completion(prompt, options))();
  }

  #checkCompletion(prompt: unknown, options: CompletionOptions): CompletionOptions {
    if (typeof prompt !== "string" && !Array.isArray(prompt) && !(prompt instanceof Int32Array)) {
      throw new TypeError("prompt must be a string or an array of token ids");
    }
    return checkOptions<CompletionOptions>("options", options, {
      ...samplingChecks,
      logprobs: (name, value) => {
        if (value !== null) integer({ min: 0, max: 100 })(name, value);
      },
      echo: boolean,
      suffix: (name, value) => {
        if (value !== null) string(name, value);
      },
      truncate: boolean,
      stream: boolean,
    });
  }

  /**
   * What a completion, streamed or not, starts from: checked options, prompt tokens, the echoed
   * prompt text, the generation request (less its signal) and the sampler.
   */
  #prepareCompletion(prompt: string | readonly number[] | Int32Array, options: CompletionOptions) {
    const o = this.#checkCompletion(prompt, options);
    this.#live();
    const defaultMaxTokens = 16;
    const tokens = this.#completionPrompt(prompt, o, o.maxTokens === undefined ? defaultMaxTokens : o.maxTokens);
    const promptText = o.echo ? (typeof prompt === "string" ? prompt : this.model.detokenize(tokens, { removeSpecial: true })) : "";
    const logprobs = o.logprobs === undefined || o.logprobs === null ? undefined : o.logprobs;
    const request = { prompt: tokens, sampling: o, defaultMaxTokens, logprobs };
    return { o, id: `cmpl-${randomUUID()}`, created: unixSeconds(), tokens, promptText, logprobs, request, sampler: this.#sampler(o, 0.8) };
  }

  async #completion(prompt: string | readonly number[] | Int32Array, options: CompletionOptions): Promise<Completion> {
    const { o, id, created, tokens, promptText, logprobs, request, sampler } = this.#prepareCompletion(prompt, options);
    try {
      const result = await this.#generate({ ...request, signal: o.signal }, sampler);
      return {
        id,
        object: "text_completion",
        created,
        model: this.modelPath,
        choices: [
          {
            text: promptText + result.text,
            index: 0,
            logprobs: logprobs === undefined ? null : this.#completionLogprobs(result.released, promptText.length),
            finish_reason: result.finishReason,
          },
        ],
        usage: { prompt_tokens: tokens.length, completion_tokens: result.completionTokens, total_tokens: tokens.length + result.completionTokens },
      };
    } finally {
      sampler.dispose();
    }
  }

  #piece(token: number): string {
    return Buffer.from(this.model.tokenBytes(token)).toString("utf8");
  }

  /** Completion logprobs of released tokens; `base`: where the generated text starts in `text`. */
  #completionLogprobs(entries: readonly ReleasedToken[], base: number): CompletionLogprobs {
    return {
      tokens: entries.map((e) => e.text),
      text_offset: entries.map((e) => base + e.offset),
      token_logprobs: entries.map((e) => e.logprob?.logprob ?? null),
      top_logprobs: entries.map((e) => (e.logprob ? Object.fromEntries(e.logprob.top.map((t) => [this.#piece(t.token), t.logprob])) : null)),
    };
  }

  #streamCompletion(prompt: string | readonly number[] | Int32Array, options: CompletionOptions): AsyncIterableIterator<CompletionChunk> {
    const { o, id, created, promptText, logprobs, request, sampler } = this.#prepareCompletion(prompt, options);
    const chunk = (text: string, finish: FinishReason | null, lp: CompletionLogprobs | null): CompletionChunk => ({
      id,
      object: "text_completion",
      created,
      model: this.modelPath,
      choices: [{ text, index: 0, logprobs: lp, finish_reason: finish }],
    });
    return this.#openStream(
      request,
      sampler,
      o.signal,
      {
        intro: o.echo ? [chunk(promptText, null, null)] : [],
        delta: (text, released) => chunk(text, null, logprobs === undefined ? null : this.#completionLogprobs(released, promptText.length)),
        finish: (reason) => chunk("", reason, null),
      },
    );
  }

  /**
   * One generation as a pulled stream of chunks: `intro` first, then a `delta` chunk per release of
   * text, then the `finish` chunk. Breaking out of it or aborting `signal` stops generation.
   */
  #openStream<T>(
    request: Omit<GenerationRequest, "signal" | "demand" | "onDelta">,
    sampler: LlamaSampler,
    signal: AbortSignal | undefined,
    chunks: { intro: T[]; delta: (text: string, released: ReleasedToken[]) => T; finish: (reason: FinishReason) => T },
  ): AsyncIterableIterator<T> {
    const stop = new AbortController();
    const stopped = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const abort = new Promise<void>((resolve) => stopped.addEventListener("abort", () => resolve(), { once: true }));
    // Generation reaches the channel only through `ref`: a stream its reader drops unfinished is
    // collected, and then stops, instead of holding its sequence for ever.
    let started = false;
    const start = () => {
      started = true;
      let generation: Promise<GenerationResult>;
      try {
        generation = this.#generate(
          {
            ...request,
            signal: stopped,
            demand: () => {
              const demand = ref.deref()?.demand() ?? null;
              return demand && Promise.race([demand, abort]);
            },
            onDelta: (text, released) => ref.deref()?.push(chunks.delta(text, released)),
          },
          sampler,
        );
      } catch (error) {
        generation = Promise.reject(error);
      }
      generation
        .then(
          (result) => {
            ref.deref()?.push(chunks.finish(result.finishReason));
            ref.deref()?.close();
          },
          // A break is no error; an abort of the caller's signal is.
          (error: unknown) => ref.deref()?.close(stop.signal.aborted && !signal?.aborted ? undefined : error),
        )
        .finally(() => sampler.dispose());
    };
    const channel = new Channel<T>(start, () => {
      stop.abort();
      if (!started) sampler.dispose();
    });
    const ref = new WeakRef(channel);
    abandonedStreams.register(channel, stop);
    for (const intro of chunks.intro) channel.push(intro);
    return channel;
  }

  /** The chat prompt by the model's template (or the chatTemplate option), and its end-of-turn text. */
  formatChat(messages: readonly ChatMessage[]): { prompt: string; stops: string[] } {
    if (!Array.isArray(messages) || messages.length === 0) throw new TypeError("messages must be a non-empty array");
    const roles: string[] = [];
    const contents: string[] = [];
    messages.forEach((m, i) => {
      expectObject(`messages[${i}]`, m);
      roles.push(expectString(`messages[${i}].role`, m.role));
      if (m.content !== null && typeof m.content !== "string") throw new TypeError(`messages[${i}].content must be a string or null`);
      contents.push(m.content ?? "");
    });
    let template = this.options.chatTemplate ?? this.model.chatTemplate();
    if (template === null) {
      if (!this.#chatFallbackNoted) {
        this.#chatFallbackNoted = true;
        console.warn(`llama-napi: ${this.modelPath} has no chat template; using ChatML`);
      }
      template = "chatml";
    }
    const prompt = applyChatTemplate(template, roles, contents, true);
    if (prompt === null) {
      throw new LlamaError(
        "UNSUPPORTED",
        `llama.cpp does not know this chat template; pass chatTemplate with one of: ${builtinChatTemplates().join(", ")}`,
      );
    }
    // The text that closes an assistant turn: what the template writes after an assistant message.
    const marker = "\u0001";
    const closed = applyChatTemplate(template, ["user", "assistant"], ["x", marker], false) ?? "";
    const after = closed.slice(closed.indexOf(marker) + 1);
    const opened = applyChatTemplate(template, ["user", "assistant", "user"], ["x", marker, "y"], false) ?? "";
    const between = opened.slice(opened.indexOf(marker) + 1);
    const common = after.length > 0 ? after : between.slice(0, Math.max(0, between.indexOf("y")));
    const endOfTurn = common.trim();
    return { prompt, stops: endOfTurn ? [endOfTurn] : [] };
  }

  #chatGrammar(format: ResponseFormat | undefined): string | undefined {
    if (format === undefined || format.type === "text") return undefined;
    if (format.type === "json_object") return format.schema ? jsonSchemaGrammar(format.schema) : jsonObjectGrammar();
    return jsonSchemaGrammar(format.json_schema.schema);
  }

  #checkChat(options: ChatCompletionOptions): ChatCompletionOptions {
    return checkOptions<ChatCompletionOptions>("options", options, {
      ...samplingChecks,
      messages: (name, value) => {
        if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of messages`);
      },
      logprobs: boolean,
      topLogprobs: integer({ min: 0, max: 20 }),
      responseFormat: (name, value) => {
        const format = expectObject(name, value);
        if (format.type === "json_object") {
          if (format.schema !== undefined) expectObject(`${name}.schema`, format.schema);
        } else if (format.type === "json_schema") {
          expectObject(`${name}.json_schema.schema`, expectObject(`${name}.json_schema`, format.json_schema).schema);
        } else if (format.type !== "text") {
          throw new RangeError(`${name}.type must be "text", "json_object" or "json_schema"`);
        }
      },
      stream: boolean,
    });
  }

  #chatPrompt(o: ChatCompletionOptions): { tokens: Int32Array; stops: string[] } {
    const { prompt, stops } = this.formatChat(o.messages);
    const bosText = this.model.info.bos >= 0 ? this.model.detokenize([this.model.info.bos], { unparseSpecial: true }) : "";
    // Templates that write the BOS text themselves must not get a second BOS.
    const addSpecial = !(bosText !== "" && prompt.startsWith(bosText));
    const tokens = this.model.tokenize(prompt, { addSpecial, parseSpecial: true });
    if (tokens.length > this.nCtx) {
      throw new LlamaError("CONTEXT_FULL", `the chat prompt has ${tokens.length} tokens but the context holds ${this.nCtx}`);
    }
    return { tokens, stops };
  }

  /** A released token as chat logprobs: its piece and bytes (or, when a stop string cut it, what was released). */
  #chatLogprob(entry: ReleasedToken): ChatLogprobs["content"][number] {
    const bytesOf = (t: number) => Array.from(this.model.tokenBytes(t));
    return {
      token: entry.whole ? this.#piece(entry.token) : entry.text,
      logprob: entry.logprob?.logprob ?? 0,
      bytes: entry.whole ? bytesOf(entry.token) : Array.from(Buffer.from(entry.text, "utf8")),
      top_logprobs: (entry.logprob?.top ?? []).map((t) => ({ token: this.#piece(t.token), logprob: t.logprob, bytes: bytesOf(t.token) })),
    };
  }

  /** A chat completion by the model's chat template; with `stream: true`, an async iterable of chunks. */
  createChatCompletion(options: ChatCompletionOptions & { stream: true }): AsyncIterableIterator<ChatCompletionChunk>;
  createChatCompletion(options: ChatCompletionOptions & { stream?: false }): Promise<ChatCompletion>;
  createChatCompletion(options: ChatCompletionOptions): Promise<ChatCompletion> | AsyncIterableIterator<ChatCompletionChunk> {
    if (options?.stream === true) return this.#streamChat(options);
    return (async () => this.#chat(options))();
  }

  /**
   * What a chat completion, streamed or not, starts from: checked options, prompt tokens, the
   * generation request (less its signal) and the sampler.
   */
  #prepareChat(options: ChatCompletionOptions) {
    const o = this.#checkChat(options);
    if (o.grammar !== undefined && o.responseFormat !== undefined && o.responseFormat.type !== "text") {
      throw new RangeError("options.grammar and options.responseFormat both constrain the output: pass one of them");
    }
    if (o.topLogprobs !== undefined && !o.logprobs) throw new RangeError("options.topLogprobs needs options.logprobs: true");
    this.#live();
    const { tokens, stops } = this.#chatPrompt(o);
    const sampler = this.#sampler(o, 0.2, this.#chatGrammar(o.responseFormat));
    const logprobs = o.logprobs ? (o.topLogprobs ?? 0) : undefined;
    const request = { prompt: tokens, sampling: o, defaultMaxTokens: null, extraStops: stops, logprobs };
    return { o, id: `chatcmpl-${randomUUID()}`, created: unixSeconds(), tokens, logprobs, request, sampler };
  }

  async #chat(options: ChatCompletionOptions): Promise<ChatCompletion> {
    const { o, id, created, tokens, logprobs, request, sampler } = this.#prepareChat(options);
    try {
      const result = await this.#generate({ ...request, signal: o.signal }, sampler);
      return {
        id,
        object: "chat.completion",
        created,
        model: this.modelPath,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: result.text },
            logprobs: logprobs === undefined ? null : { content: result.released.map((e) => this.#chatLogprob(e)) },
            finish_reason: result.finishReason,
          },
        ],
        usage: { prompt_tokens: tokens.length, completion_tokens: result.completionTokens, total_tokens: tokens.length + result.completionTokens },
      };
    } finally {
      sampler.dispose();
    }
  }

  #streamChat(options: ChatCompletionOptions): AsyncIterableIterator<ChatCompletionChunk> {
    const { o, id, created, logprobs, request, sampler } = this.#prepareChat(options);
    const chunk = (delta: ChatCompletionChunk["choices"][number]["delta"], finish: FinishReason | null, lp: ChatLogprobs | null): ChatCompletionChunk => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: this.modelPath,
      choices: [{ index: 0, delta, logprobs: lp, finish_reason: finish }],
    });
    return this.#openStream(
      request,
      sampler,
      o.signal,
      {
        intro: [chunk({ role: "assistant", content: "" }, null, null)],
        delta: (text, released) => chunk({ content: text }, null, logprobs === undefined ? null : { content: released.map((e) => this.#chatLogprob(e)) }),
        finish: (reason) => chunk({}, reason, null),
      },
    );
  }

  /** The embedding context: pooled (mean unless the model says otherwise), created on first use. */
  #embeddings(): Promise<LlamaContext> {
    if (this.#disposed) throw new LlamaError("DISPOSED", "this Llama has been disposed");
    if (this.#context === null) throw new LlamaError("UNSUPPORTED", "a vocabOnly Llama cannot embed");
    this.#embeddingContext ??= (async () => {
      const size = this.nCtx;
      const options = { nCtx: size, nBatch: size, nUbatch: size, nThreads: this.#context!.info.nThreads, embeddings: true };
      const context = await this.model.createContext({ ...options, pooling: "unspecified" });
      if (context.info.poolingType !== 0) return context;
      await context.dispose();
      return this.model.createContext({ ...options, pooling: "mean" });
    })();
    return this.#embeddingContext;
  }

  /** Embedding vectors of one or more texts. */
  async embed(input: string | readonly string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    const o = checkOptions<EmbedOptions>("options", options, { normalize: boolean });
    return (await this.#embedAll(input, o.normalize ?? false)).vectors;
  }

  async #embedAll(input: string | readonly string[], normalize: boolean): Promise<{ vectors: Float32Array[]; tokens: number }> {
    const texts = typeof input === "string" ? [input] : input;
    if (!Array.isArray(texts)) throw new TypeError("input must be a string or an array of strings");
    texts.forEach((t, i) => expectString(`input[${i}]`, t));
    const context = await this.#embeddings();
    const run = this.#embeddingQueue.then(async () => {
      const vectors: Float32Array[] = [];
      let total = 0;
      for (const text of texts) {
        const tokens = this.model.tokenize(text, { addSpecial: true });
        if (tokens.length === 0) throw new RangeError("cannot embed an empty text");
        if (tokens.length > context.nCtxSeq) {
          throw new LlamaError("CONTEXT_FULL", `the input has ${tokens.length} tokens but the embedding context holds ${context.nCtxSeq}`);
        }
        context.clear();
        await context.decode({ tokens, logits: "all" });
        const vector = context.sequenceEmbeddings(0);
        vectors.push(normalize ? l2normalize(vector) : vector);
        total += tokens.length;
      }
      return { vectors, tokens: total };
    });
    this.#embeddingQueue = run.catch(() => undefined);
    return run;
  }

  /** OpenAI's embeddings response for one or more texts. */
  async createEmbedding(input: string | readonly string[]): Promise<EmbeddingList> {
    const { vectors, tokens } = await this.#embedAll(input, false);
    return {
      object: "list",
      data: vectors.map((v, index) => ({ object: "embedding", embedding: Array.from(v), index })),
      model: this.modelPath,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  }

  /** Frees the contexts and the model; waits for work in flight. Calling it again does nothing more. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const embedding = this.#embeddingContext;
    await this.#context?.dispose();
    if (embedding) await (await embedding.catch(() => null))?.dispose();
    this.model.dispose();
    this.#releaseLog();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
