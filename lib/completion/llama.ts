// The completion API in llama-cpp-python's shape: Llama.load, createCompletion (streaming or
// not), createChatCompletion, createEmbedding/embed, with OpenAI's response objects. It checks the
// options, builds each request and shapes the answer; generation.ts runs it.
import { holdVerboseLog } from "../core/backend.js";
import type { LlamaContext } from "../core/context.js";
import type { LlamaModel } from "../core/model.js";
import type { LlamaSampler } from "../core/sampler.js";
import { LlamaError } from "../errors.js";
import { boolean, checkOptions, signal } from "../validate.js";
import { ChatFormatter } from "./chat.js";
import { ChatReply } from "./chat-reply.js";
import { Adapters } from "./adapters.js";
import { attachDraft, type Draft } from "./draft.js";
import { checkCanShift, contextShiftOf } from "./context-shift.js";
import { Embedder, embeddingTexts } from "./embeddings.js";
import { Reranker, type RerankOptions } from "./rerank.js";
import { runGeneration, type GenerationRequest, type GenerationResult, type Prepared } from "./generation.js";
import {
  CHAT_DEFAULTS,
  checkChatFormatOptions,
  checkChatOptions,
  checkCompletionOptions,
  checkLoadOptions,
  COMPLETION_DEFAULTS,
  LOAD_DEFAULTS,
  samplerOptionsOf,
  stopList,
  tokenLimit,
  type ChatCompletionOptions,
  type ChatFormatOptions,
  type CompletionOptions,
  type EmbedOptions,
  type LlamaLoadOptions,
  type SamplingOptions,
} from "./options.js";
import { completionPromptTokens } from "./prompt.js";
import { chatLogprobs, completionLogprobs, responseId, usage } from "./responses.js";
import { emptyStats, Scheduler, type SchedulerStats } from "./scheduler.js";
import { SlotStates } from "./slot-state.js";
import { openStream, type StreamChunks } from "./stream.js";
import { completionMedia, extractChatMedia, MEDIA_MARKER, pendingMedia, runWithMedia } from "./media.js";
import type { LlamaProjector } from "../core/projector.js";
import { openModel, pretrainedLoadOptions, withLocalModels, type FromPretrainedOptions } from "./load.js";
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionDelta,
  ChatFinishReason,
  ChatLogprobs,
  ChatMessage,
  Completion,
  CompletionChunk,
  EmbeddingList,
  FinishReason,
  RerankList,
  RerankResult,
} from "./types.js";

export type { ChatCompletionOptions, ChatFormatOptions, CompletionOptions, DraftOptions, EmbedOptions } from "./options.js";
export type { FromPretrainedOptions } from "./load.js";
export type { LlamaLoadOptions, MirostatSampling, ResponseFormat, SamplingOptions } from "./options.js";

type Prompt = string | readonly number[] | Int32Array;

/** A loaded model ready for completions, chat and embeddings, as llama-cpp-python's Llama. */
export class Llama {
  readonly modelPath: string;
  readonly model: LlamaModel;
  readonly options: Readonly<LlamaLoadOptions>;
  #context: LlamaContext | null;
  #scheduler: Scheduler | null;
  #embedder: Embedder | null;
  #reranker: Reranker | null;
  readonly #projector: LlamaProjector | null;
  #draft: Draft | null = null;
  #slots: SlotStates | null = null;
  readonly #adapters: Adapters;
  readonly #chat: ChatFormatter;
  #disposed = false;
  /** A verbose Llama keeps llama.cpp's log on stderr until it is disposed. */
  #releaseLog: () => void = () => {};

  private constructor(options: LlamaLoadOptions, model: LlamaModel, context: LlamaContext | null, projector: LlamaProjector | null) {
    this.options = Object.freeze({ ...options });
    this.#projector = projector;
    this.modelPath = options.modelPath;
    this.model = model;
    this.#context = context;
    this.#scheduler = context ? new Scheduler(context) : null;
    this.#embedder = context ? new Embedder(model, context.nCtxSeq, context.info.nThreads) : null;
    this.#reranker = context ? new Reranker(model, context.nCtxSeq, context.info.nThreads, options.flashAttn) : null;
    this.#chat = new ChatFormatter(model, { template: options.chatTemplate, jinja: options.jinja });
    this.#adapters = new Adapters(model, options.lora);
  }

  /** Loads a model: a path, or a Hub model by name (`hf:owner/repo:Q4_K_M`), downloaded first when not cached. */
  static async load(options: LlamaLoadOptions): Promise<Llama> {
    const o = await withLocalModels(checkLoadOptions(options));
    const releaseLog = o.verbose ? holdVerboseLog() : () => {};
    let opened: Awaited<ReturnType<typeof openModel>> | null = null;
    let llama: Llama | null = null;
    try {
      opened = await openModel(o);
      const { model, context, projector, nThreads } = opened;
      llama = new Llama(o, model, context, projector);
      if (context !== null) {
        // Adapters that fail to load fail the load.
        await llama.#adapters.resolve(undefined);
        if (o.draft) llama.#draft = await attachDraft(context, o.draft, { nGpuLayers: o.nGpuLayers ?? LOAD_DEFAULTS.nGpuLayers, nThreads, signal: o.signal });
        if (o.embedding) await llama.#helper(llama.#embedder, "embed").context();
      }
      llama.#releaseLog = releaseLog;
      return llama;
    } catch (err) {
      await opened?.context?.dispose();
      opened?.projector?.dispose();
      if (llama !== null) {
        await llama.#draft?.dispose();
        await llama.#adapters.dispose();
      }
      opened?.model.dispose();
      releaseLog();
      throw err;
    }
  }

  /** Loads a GGUF of a Hub repository (llama-cpp-python's from_pretrained): `filename` may be a glob. */
  static async fromPretrained(options: FromPretrainedOptions): Promise<Llama> {
    return Llama.load(await pretrainedLoadOptions(options));
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

  /** What the model takes besides text: images, audio (with a projector, Llama.load's mmprojPath). */
  get capabilities(): { vision: boolean; audio: boolean } {
    return { vision: this.#projector?.info.vision ?? false, audio: this.#projector?.info.audio ?? false };
  }

  /** Completions waiting for a free sequence. */
  get queued(): number {
    return this.#scheduler?.queued ?? 0;
  }

  /** Completions being generated now. */
  get active(): number {
    return this.#scheduler?.active ?? 0;
  }

  /** A snapshot of the batching loop's counters and of the tokens its sequences hold (SchedulerStats). */
  get stats(): Readonly<SchedulerStats> {
    return this.#scheduler?.stats ?? emptyStats();
  }

  /** The generation context (null for vocabOnly), for the low-level API. */
  get context(): LlamaContext | null {
    return this.#context;
  }

  /** The sequences' prompt caches, as llama-server's slots: saved to a file, restored, erased. */
  get slots(): SlotStates {
    this.#slots ??= new SlotStates(this.#live(), this.#context!);
    return this.#slots;
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

  /** A request's context shift: its own, or the Llama's. */
  #contextShift(o: SamplingOptions): { keep: number } | null {
    const shift = contextShiftOf(o.contextShift ?? this.options.contextShift);
    if (shift !== null && o.contextShift !== undefined) checkCanShift(this.#context!, "options.contextShift");
    return shift;
  }

  #sampler(o: SamplingOptions, defaults: { temperature?: number }): LlamaSampler {
    return this.model.createSampler(samplerOptionsOf(o, { temperature: defaults.temperature, seed: this.options.seed }));
  }

  /**
   * Runs a generation with the request's LoRA adapters: at once when they are loaded (the common
   * case), so that requests queue in call order; after loading them otherwise.
   */
  #generate(prepared: Prepared, hooks: Pick<GenerationRequest, "signal" | "onDelta" | "waitForReader">): Promise<GenerationResult> {
    const run = (): Promise<GenerationResult> => {
      const request = { ...prepared.request, ...hooks };
      const resolved = this.#adapters.resolve(prepared.lora);
      if (resolved instanceof Promise) return resolved.then((adapters) => runGeneration(this.#live(), this.model, { ...request, adapters }));
      return runGeneration(this.#live(), this.model, { ...request, adapters: resolved });
    };
    // A request with images or audio reads and tokenizes them first (media.ts).
    return prepared.media ? runWithMedia(this.#projector, this.options, this.nCtx, prepared, run) : run();
  }

  /** Runs a prepared request whole; the sampler is freed when it ends. */
  async #runWhole(prepared: Prepared): Promise<GenerationResult> {
    try {
      return await this.#generate(prepared, { signal: prepared.signal });
    } finally {
      prepared.request.sampler.dispose();
    }
  }

  /** Runs a prepared request as a pulled stream of chunks; the sampler is freed when it ends. */
  #runStream<T>(prepared: Prepared, chunks: StreamChunks<T>): AsyncIterableIterator<T> {
    const { request, signal } = prepared;
    // The stream starts when first read: a Llama disposed by then fails it with DISPOSED.
    return openStream((hooks) => this.#generate(prepared, hooks), signal, chunks, () => request.sampler.dispose());
  }

  /** A completion of `prompt`, returned whole; with `stream: true`, an async iterable of chunks. */
  createCompletion(prompt: Prompt, options: CompletionOptions & { stream: true }): AsyncIterableIterator<CompletionChunk>;
  createCompletion(prompt: Prompt, options?: CompletionOptions & { stream?: false }): Promise<Completion>;
  createCompletion(prompt: Prompt, options: CompletionOptions = {}): Promise<Completion> | AsyncIterableIterator<CompletionChunk> {
    if (options?.stream === true) return this.#streamCompletion(prompt, options);
    return (async () => this.#completion(prompt, options))();
  }

  /** What a completion, streamed or not, starts from: its request, the echoed prompt text and its log-probability setting. */
  #prepareCompletion(prompt: Prompt, options: CompletionOptions) {
    const o = checkCompletionOptions(prompt, options);
    this.#live();
    const maxTokens = o.maxTokens === undefined ? COMPLETION_DEFAULTS.maxTokens : o.maxTokens;
    const tokens = completionPromptTokens(this.model, prompt, { suffix: o.suffix, truncate: o.truncate, maxTokens, nCtx: this.nCtx });
    const promptText = o.echo ? (typeof prompt === "string" ? prompt : this.model.detokenize(tokens, { removeSpecial: true })) : "";
    const logprobs = o.logprobs === undefined || o.logprobs === null ? undefined : o.logprobs;
    const contextShift = this.#contextShift(o);
    const request = {
      prompt: tokens,
      sampler: this.#sampler(o, {}),
      stops: stopList(o.stop),
      maxTokens: tokenLimit(o.maxTokens, COMPLETION_DEFAULTS.maxTokens),
      contextShift,
      logprobs,
    };
    const media = o.media?.length ? completionMedia(prompt, o, contextShift) : undefined;
    const prepared: Prepared = { request, signal: o.signal, lora: o.lora, media, ...responseId("cmpl") };
    return { prepared, promptText, logprobs };
  }

  async #completion(prompt: Prompt, options: CompletionOptions): Promise<Completion> {
    const { prepared, promptText, logprobs } = this.#prepareCompletion(prompt, options);
    const result = await this.#runWhole(prepared);
    return {
      id: prepared.id,
      object: "text_completion",
      created: prepared.created,
      model: this.modelPath,
      choices: [
        {
          text: promptText + result.text,
          index: 0,
          logprobs: logprobs === undefined ? null : completionLogprobs(this.model, result.released, promptText.length),
          finish_reason: result.finishReason,
        },
      ],
      usage: usage(prepared.request.prompt.length, result, this.#draft !== null),
    };
  }

  #streamCompletion(prompt: Prompt, options: CompletionOptions): AsyncIterableIterator<CompletionChunk> {
    const { prepared, promptText, logprobs } = this.#prepareCompletion(prompt, options);
    const includeUsage = options.streamOptions?.includeUsage === true;
    const chunk = (text: string, finish: FinishReason | null, lp: CompletionChunk["choices"][number]["logprobs"]): CompletionChunk => ({
      id: prepared.id,
      object: "text_completion",
      created: prepared.created,
      model: this.modelPath,
      choices: [{ text, index: 0, logprobs: lp, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });
    return this.#runStream(prepared, {
      intro: options.echo ? [chunk(promptText, null, null)] : [],
      delta: (text, released) => chunk(text, null, logprobs === undefined ? null : completionLogprobs(this.model, released, promptText.length)),
      finish: (result) => [
        chunk("", result.finishReason, null),
        ...(includeUsage ? [{ ...chunk("", null, null), choices: [], usage: usage(prepared.request.prompt.length, result, this.#draft !== null) }] : []),
      ],
    });
  }

  /**
   * The chat prompt by the model's template (or the chatTemplate option), with the tools where
   * given, and the texts that end the assistant's turn.
   */
  formatChat(messages: readonly ChatMessage[], options: ChatFormatOptions = {}): { prompt: string; stops: string[] } {
    return this.#chat.format({ ...checkChatFormatOptions(options), messages });
  }

  /**
   * A chat completion by the model's chat template, with tool calls where `tools` are given; with
   * `stream: true`, an async iterable of chunks.
   */
  createChatCompletion(options: ChatCompletionOptions & { stream: true }): AsyncIterableIterator<ChatCompletionChunk>;
  createChatCompletion(options: ChatCompletionOptions & { stream?: false }): Promise<ChatCompletion>;
  createChatCompletion(options: ChatCompletionOptions): Promise<ChatCompletion> | AsyncIterableIterator<ChatCompletionChunk> {
    if (options?.stream === true) return this.#streamChat(options);
    return (async () => this.#chatCompletion(options))();
  }

  /** What a chat completion, streamed or not, starts from: its request, its reply reader and its log-probability setting. */
  #prepareChat(options: ChatCompletionOptions) {
    const o = checkChatOptions(options);
    this.#live();
    const contextShift = this.#contextShift(o);
    const { messages, sources } = extractChatMedia(o.messages, this.#projector?.info.marker ?? MEDIA_MARKER);
    const chat = this.#chat.prepare({ ...o, messages }, this.nCtx);
    if (o.stream && o.logprobs && (o.tools?.length ?? 0) > 0) {
      throw new LlamaError("INVALID_ARGUMENT", "logprobs cannot be streamed with tools");
    }
    const sampler = this.#sampler({ ...o, ...chat.sampling }, { temperature: CHAT_DEFAULTS.temperature });
    const logprobs = o.logprobs ? (o.topLogprobs ?? 0) : undefined;
    const request = {
      prompt: chat.tokens,
      sampler,
      stops: [...stopList(o.stop), ...chat.stops],
      maxTokens: tokenLimit(o.maxTokens, CHAT_DEFAULTS.maxTokens),
      contextShift,
      logprobs,
      specialTokens: chat.specialTokens,
    };
    const media = sources.length > 0 ? pendingMedia(chat.text, chat.addSpecial, sources, contextShift) : undefined;
    const prepared: Prepared = { request, signal: o.signal, lora: o.lora, media, ...responseId("chatcmpl") };
    return { prepared, logprobs, reply: new ChatReply(chat.parser, { dropToolCalls: chat.dropToolCalls, parallelToolCalls: o.parallelToolCalls ?? false }), includeUsage: o.streamOptions?.includeUsage ?? false };
  }

  async #chatCompletion(options: ChatCompletionOptions): Promise<ChatCompletion> {
    const { prepared, logprobs, reply } = this.#prepareChat(options);
    const result = await this.#runWhole(prepared);
    const message = reply.message(result.text);
    return {
      id: prepared.id,
      object: "chat.completion",
      created: prepared.created,
      model: this.modelPath,
      choices: [
        {
          index: 0,
          message,
          logprobs: logprobs === undefined ? null : chatLogprobs(this.model, result.released),
          finish_reason: reply.finishReason(result.finishReason),
        },
      ],
      usage: usage(prepared.request.prompt.length, result, this.#draft !== null),
    };
  }

  #streamChat(options: ChatCompletionOptions): AsyncIterableIterator<ChatCompletionChunk> {
    const { prepared, logprobs, reply, includeUsage } = this.#prepareChat(options);
    type Choice = ChatCompletionChunk["choices"][number];
    const chunk = (choices: Choice[], extra: Partial<ChatCompletionChunk> = {}): ChatCompletionChunk => ({
      id: prepared.id,
      object: "chat.completion.chunk",
      created: prepared.created,
      model: this.modelPath,
      choices,
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    });
    const choice = (delta: ChatCompletionDelta, finish: ChatFinishReason | null, lp: ChatLogprobs | null): Choice => ({ index: 0, delta, logprobs: lp, finish_reason: finish });
    return this.#runStream(prepared, {
      intro: [chunk([choice({ role: "assistant", content: "" }, null, null)])],
      delta: (text, released) => {
        const lp = logprobs === undefined || released.length === 0 ? null : chatLogprobs(this.model, released);
        const delta = reply.delta(text);
        return delta === undefined && lp === null ? undefined : chunk([choice(delta ?? {}, null, lp)]);
      },
      finish: (result) => {
        const rest = reply.finish();
        return [
          ...(rest === undefined ? [] : [chunk([choice(rest, null, null)])]),
          chunk([choice({}, reply.finishReason(result.finishReason), null)]),
          ...(includeUsage ? [chunk([], { usage: usage(prepared.request.prompt.length, result, this.#draft !== null) })] : []),
        ];
      },
    });
  }

  /** The embedder or the reranker (each creates its context on first use), unless disposed or vocabOnly. */
  #helper<T>(helper: T | null, what: string): T {
    if (this.#disposed) throw new LlamaError("DISPOSED", "this Llama has been disposed");
    if (helper === null) throw new LlamaError("UNSUPPORTED", `a vocabOnly Llama cannot ${what}`);
    return helper;
  }

  /** Embedding vectors of one or more texts. */
  async embed(input: string | readonly string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    const o = checkOptions<EmbedOptions>("options", options, { normalize: boolean, signal });
    return (await this.#helper(this.#embedder, "embed").embed(embeddingTexts(input), o.normalize ?? false, o.signal)).vectors;
  }

  /** OpenAI's embeddings response for one or more texts. */
  async createEmbedding(input: string | readonly string[], options: Pick<EmbedOptions, "signal"> = {}): Promise<EmbeddingList> {
    const o = checkOptions<Pick<EmbedOptions, "signal">>("options", options, { signal });
    return this.#helper(this.#embedder, "embed").list(embeddingTexts(input), this.modelPath, o.signal);
  }

  /** The documents by relevance to `query` (a reranker's scores, as llama-server's /rerank), best first. */
  async rerank(query: string, documents: readonly string[], options: RerankOptions = {}): Promise<RerankResult[]> {
    return (await this.createRerank(query, documents, options)).results;
  }

  /** llama-server's /rerank response: rerank's results, with the tokens the documents' prompts took. */
  async createRerank(query: string, documents: readonly string[], options: RerankOptions = {}): Promise<RerankList> {
    return this.#helper(this.#reranker, "rerank").list(query, documents, this.modelPath, options);
  }

  /** Frees the contexts and the model; waits for work in flight. Calling it again does nothing more. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#context?.dispose();
    this.#projector?.dispose();
    await this.#draft?.dispose();
    await this.#adapters.dispose();
    await this.#embedder?.dispose();
    await this.#reranker?.dispose();
    this.model.dispose();
    this.#releaseLog();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
