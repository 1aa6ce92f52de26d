import { callNative, withAbort } from "./abort.js";
import { defaultThreads, maxParallelSequences } from "./backend.js";
import { LlamaError } from "../errors.js";
import type { LoadedModel } from "./loaded-model.js";
import { isNativeBatch, toNativeBatch, type Batch, type NativeBatch } from "./batch.js";
import type {
  NativeAbortFlag,
  NativeContext,
  NativeContextInfo,
  NativeGenerateRequest,
  NativeGenerateResult,
  NativePerf,
  NativeSampleResult,
} from "./native.js";
import { native } from "./binding.js";
import { watchRpc } from "./rpc.js";
import { LlamaLora } from "./lora.js";
import { DRAFTER_DEFAULTS, RunAheadChannel, type DrafterOptions, type GenerateAheadOptions } from "./run-ahead.js";
import type { MediaPrompt } from "./projector.js";
import { flashCodes, poolingCodes, type ContextOptions, type DecodeAndSampleOptions, type DecodeOptions, type FlashAttention, type PoolingType, type SampleRequest } from "./context-options.js";
import type { LlamaSampler } from "./sampler.js";
import { boolean, checkOptions, expectHandle, expectInteger, expectNumber, expectObject, integer, number, oneOf, string, toTokenArray } from "../validate.js";

export type { ContextOptions, DecodeAndSampleOptions, DecodeOptions, FlashAttention, PoolingType, SampleRequest } from "./context-options.js";

export type SampleResult = NativeSampleResult;
export type ContextPerf = NativePerf;
export type ContextInfo = NativeContextInfo;


function checkDraft(name: string, draft: unknown): { history: Int32Array; nDraft: number } {
  const d = expectObject(name, draft) as { history?: unknown; nDraft?: unknown };
  if (!(d.history instanceof Int32Array)) throw new TypeError(`${name}.history must be an Int32Array`);
  return { history: d.history, nDraft: expectInteger(`${name}.nDraft`, d.nDraft, { min: 0, max: 1 << 16 }) };
}

/** The most tokens a context may hold (all its sequences together). */
export const MAX_CONTEXT_TOKENS = 1 << 24;

/** A llama.cpp context: the KV cache of one or more sequences, over a model it keeps alive. */
export class LlamaContext {
  readonly model: LoadedModel;
  readonly info: ContextInfo;
  /**
   * Tokens one sequence may hold: the nCtx asked for (split over nSeqMax sequences unless the KV
   * cache is unified), although llama.cpp rounds its cache up (to 256).
   */
  readonly nCtxSeq: number;
  /** The context size: as asked for, or the model's training context when asked for 0. */
  readonly nCtx: number;
  #native: NativeContext | null;
  #tail: Promise<unknown> = Promise.resolve();
  #disposing: Promise<void> | null = null;
  #rpcFailure: LlamaError | null = null;
  #drafting = false;

  private constructor(model: LoadedModel, handle: NativeContext, requestedCtx: number, kvUnified: boolean) {
    this.model = model;
    this.#native = handle;
    this.info = handle.info();
    const requestedPerSeq = kvUnified ? requestedCtx : Math.floor(requestedCtx / this.info.nSeqMax);
    this.nCtxSeq = requestedCtx > 0 ? Math.min(requestedPerSeq, this.info.nCtxSeq) : this.info.nCtxSeq;
    this.nCtx = requestedCtx > 0 ? Math.min(requestedCtx, this.info.nCtx) : this.info.nCtx;
  }

  static async create(model: LoadedModel, options: ContextOptions = {}): Promise<LlamaContext> {
    const o = checkOptions<ContextOptions>("options", options, {
      nCtx: integer({ min: 0, max: MAX_CONTEXT_TOKENS }),
      nBatch: integer({ min: 1, max: 1 << 20 }),
      nUbatch: integer({ min: 1, max: 1 << 20 }),
      nSeqMax: integer({ min: 1, max: maxParallelSequences() }),
      nThreads: integer({ min: 1, max: 1024 }),
      nThreadsBatch: integer({ min: 1, max: 1024 }),
      embeddings: boolean,
      pooling: oneOf<PoolingType>("unspecified", "none", "mean", "cls", "last", "rank"),
      flashAttn: oneOf<FlashAttention>("auto", "on", "off"),
      typeK: string,
      typeV: string,
      kvUnified: boolean,
    });
    if (model.info.nLayer === 0 || model.disposed) {
      throw new LlamaError(model.disposed ? "DISPOSED" : "CONTEXT_CREATE_FAILED",
        model.disposed ? "the model has been disposed" : "a vocabulary-only model cannot have a context");
    }
    const nThreads = o.nThreads ?? defaultThreads();
    const nBatch = o.nBatch ?? 512;
    const nCtx = o.nCtx ?? 512;
    const kvUnified = o.kvUnified ?? false;
    const handle = await withAbort(undefined, "context creation", () =>
      native.createContext(model.native, {
        nCtx,
        nBatch,
        nUbatch: Math.min(o.nUbatch ?? 512, nBatch),
        nSeqMax: o.nSeqMax ?? 1,
        nThreads,
        nThreadsBatch: o.nThreadsBatch ?? nThreads,
        embeddings: o.embeddings ?? false,
        poolingType: poolingCodes[o.pooling ?? "unspecified"],
        flashAttn: flashCodes[o.flashAttn ?? "auto"],
        typeK: o.typeK,
        typeV: o.typeV,
        kvUnified,
        // llama.cpp's default leaves perf()'s timings at zero.
        noPerf: false,
      }),
    );
    return new LlamaContext(model, handle, nCtx, kvUnified);
  }

  get native(): NativeContext {
    if (this.#native === null || this.#disposing !== null) {
      throw new LlamaError("DISPOSED", "the context has been disposed");
    }
    if (this.#rpcFailure !== null) throw this.#rpcFailure;
    return this.#native;
  }

  get disposed(): boolean {
    return this.#disposing !== null;
  }

  /** Whether a drafter is attached: generateAhead speculates when given the sequence's history. */
  get drafting(): boolean {
    return this.#drafting;
  }

  /**
   * Attaches llama.cpp's speculative drafting (common/speculative): a draft model's context (as many
   * sequences as this one, the same vocabulary, used by nothing else) or n-gram lookup in the
   * sequence's own tokens; null detaches it. Only while no operation is queued or running.
   */
  setDrafter(options: DrafterOptions | null, draft?: LlamaContext): void {
    if (options !== null) {
      const o = checkOptions<DrafterOptions>("options", expectObject("options", options), {
        type: oneOf("model", "ngram"),
        nDraft: integer({ min: 1, max: this.info.nBatch - 1 }),
        pMin: number({ min: 0, max: 1 }),
        ngramSize: integer({ min: 1, max: 1024 }),
      });
      oneOf("model", "ngram")("options.type", o.type);
      if (o.type === "model" && !(draft instanceof LlamaContext)) throw new TypeError("a draft model's drafter needs its LlamaContext");
      const nativeOptions = {
        type: o.type,
        nDraft: o.nDraft ?? DRAFTER_DEFAULTS.nDraft,
        pMin: o.pMin ?? DRAFTER_DEFAULTS.pMin,
        ngramSize: o.ngramSize ?? DRAFTER_DEFAULTS.ngramSize,
      };
      callNative(() => this.native.setDrafter(nativeOptions, o.type === "model" ? draft!.native : undefined));
    } else {
      callNative(() => this.native.setDrafter(null));
    }
    this.#drafting = options !== null;
  }

  get nBatch(): number {
    return this.info.nBatch;
  }

  get nSeqMax(): number {
    return this.info.nSeqMax;
  }

  /** Runs async native work one operation at a time, in call order. */
  #enqueue<T>(
    what: string,
    signal: AbortSignal | undefined,
    run: (handle: NativeContext, flag: NativeAbortFlag | undefined) => Promise<T>,
  ): Promise<T> {
    // A disposed or failed context rejects, as a dispose while the work waits in the queue does.
    const result = this.#tail.then(async () => {
      const handle = this.native;
      try {
        return await withAbort(signal, what, (flag) => {
          const running = run(handle, flag);
          return this.model.usesRpc ? watchRpc(running) : running;
        });
      } catch (err) {
        if (this.#disposing !== null && err instanceof LlamaError && err.code === "ABORTED") {
          throw new LlamaError("DISPOSED", `the context was disposed during ${what}`);
        }
        // The native operation stays stuck on the lost server: this context can do nothing more.
        if (err instanceof LlamaError && err.code === "RPC_UNAVAILABLE") this.#rpcFailure = err;
        throw err;
      }
    });
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Converts a Batch into the addon's arrays, filling default positions, sequences and logits. */
  toNativeBatch(batch: Batch): NativeBatch {
    return toNativeBatch(batch, {
      nBatch: this.info.nBatch,
      nSeqMax: this.info.nSeqMax,
      nextPosition: (seqId) => callNative(() => this.native.seqPosRange(seqId))[1] + 1,
    });
  }

  /** Evaluates a batch off the event loop. Rejects with CONTEXT_FULL when the KV cache has no room. */
  async decode(batch: Batch | NativeBatch, options: DecodeOptions = {}): Promise<void> {
    const input = this.#prepare(batch);
    return this.#enqueue("decode", options.signal, (handle, flag) => handle.decode(input, flag));
  }

  /**
   * Encodes media chunk `chunk` of `prompt` (an image or a stretch of audio; MediaPrompt.media)
   * and decodes it into sequence `seqId` from position `nPast`, on the thread pool; resolves to the
   * position after it.
   */
  async evalMedia(prompt: MediaPrompt, chunk: number, seqId: number, nPast: number, options: DecodeOptions = {}): Promise<number> {
    expectInteger("chunk", chunk, { min: 0 });
    expectInteger("seqId", seqId, { min: 0, max: this.info.nSeqMax - 1 });
    expectInteger("nPast", nPast, { min: 0, max: 0x7fffffff });
    const handle = prompt.native;
    return this.#enqueue("media decode", options.signal, (context, flag) => context.evalMedia(handle, chunk, seqId, nPast, flag));
  }

  /**
   * Evaluates a batch and samples the listed outputs in the same native call: one crossing per
   * generation step. Each sampler accepts its token. A sample with a `draft` (a drafter attached)
   * may yield several tokens, in order: see SampleResult.counts.
   */
  async decodeAndSample(
    batch: Batch | NativeBatch,
    samples: readonly SampleRequest[],
    options: DecodeAndSampleOptions = {},
  ): Promise<SampleResult> {
    const input = this.#prepare(batch);
    if (!Array.isArray(samples) || samples.length === 0) throw new TypeError("samples must be a non-empty array");
    const samplers = samples.map((s, i) => {
      expectObject(`samples[${i}]`, s);
      expectHandle(`samples[${i}].sampler`, s.sampler, "LlamaSampler", "seed");
      return s.sampler.native;
    });
    const indices = Int32Array.from(samples, (s, i) => expectInteger(`samples[${i}].index`, s.index, { min: 0 }));
    const nLogprobs = options.logprobs === undefined ? -1 : expectInteger("options.logprobs", options.logprobs, { min: 0, max: 1000 });
    const drafts = samples.some((s) => s.draft !== undefined) ? samples.map((s, i) => (s.draft === undefined ? null : checkDraft(`samples[${i}].draft`, s.draft))) : undefined;
    if (drafts !== undefined && !this.#drafting) throw new LlamaError("INVALID_ARGUMENT", "samples[].draft needs a drafter (setDrafter)");
    return this.#enqueue("decode", options.signal, (handle, flag) =>
      handle.decodeAndSample(input, samplers, indices, flag, nLogprobs, drafts),
    );
  }

  /**
   * Generates on one sequence ahead of JavaScript: decodes `request.token` at `request.position`,
   * samples the next token, hands it to `onToken` without waiting for it, decodes it, and so on,
   * until `stop()` is called, `maxTokens` are sampled, the position reaches `maxPosition`, (with
   * `stopAtEog`) an end-of-generation token is sampled, or `onToken` falls behind (the run never
   * decodes more than one token beyond what `onToken` has returned from, or, when it returns a
   * promise, beyond the tokens whose promise has settled). `onToken` gets every
   * sampled token once, in order, before `done` settles; after `stop()` it may still get the token
   * in flight. `done` resolves with the tokens now in the KV cache and all sampled tokens, or
   * rejects with ABORTED when `options.signal` aborts before it settles.
   *
   * With a drafter (setDrafter) and `request.history` (the tokens the sequence holds), each step
   * decodes the last token with the tokens drafted after it and yields those the sampler takes
   * plus one it samples: the same tokens plain decoding yields, several per decode. The run stays
   * at most one step ahead of `onToken`.
   */
  generateAhead(
    request: NativeGenerateRequest,
    sampler: LlamaSampler,
    onToken: (token: number) => unknown,
    options: GenerateAheadOptions = {},
  ): { done: Promise<NativeGenerateResult>; stop(): void } {
    const r = checkOptions<NativeGenerateRequest>("request", request, {
      token: integer({ min: 0, max: this.model.nVocab - 1 }),
      position: integer({ min: 0 }),
      seqId: integer({ min: 0, max: this.info.nSeqMax - 1 }),
      maxTokens: integer({ min: 0, max: 2 ** 31 - 1 }),
      maxPosition: integer({ min: 0, max: 2 ** 31 - 1 }),
      stopAtEog: boolean,
      history: (name, value) => {
        if (!(value instanceof Int32Array) || value.length !== request.position) {
          throw new TypeError(`${name} must be an Int32Array of request.position tokens`);
        }
      },
    }) as NativeGenerateRequest;
    expectHandle("sampler", sampler, "LlamaSampler", "seed");
    if (typeof onToken !== "function") throw new TypeError("onToken must be a function");
    if (r.history !== undefined && !this.#drafting) throw new LlamaError("INVALID_ARGUMENT", "request.history needs a drafter (setDrafter)");
    const channel = new RunAheadChannel(onToken);
    const done = this.#enqueue("generation", options.signal, async (handle, flag) => {
      const result = await handle.generateAhead(r, sampler.native, channel.post, channel.handled, channel.stopFlag, flag);
      channel.finish(result.sampled);
      // The run may have ended (onToken fell behind) before an abort from a late onToken reached it.
      if (options.signal?.aborted) throw new LlamaError("ABORTED", "generation aborted", { cause: options.signal.reason });
      return result;
    });
    return { done, stop: () => channel.stopFlag.abort() };
  }

  /**
   * The LoRA adapters the context applies from its next decode on (none: the base model), queued
   * after the operations before it. KV entries decoded under other adapters are not to be reused.
   */
  async setLoras(adapters: ReadonlyArray<{ lora: LlamaLora; scale: number }>): Promise<void> {
    if (!Array.isArray(adapters) || adapters.some((a) => !(a?.lora instanceof LlamaLora))) throw new TypeError("adapters must be an array of { lora: LlamaLora, scale }");
    const scales = adapters.map((a, i) => expectNumber(`adapters[${i}].scale`, a.scale));
    const loras = adapters.map((a) => a.lora.native);
    return this.#enqueue("LoRA switch", undefined, async (handle) => handle.setLoras(loras, scales));
  }

  /** A batch from the batch factory passes as is (the generation loops build those). */
  #prepare(batch: Batch | NativeBatch): NativeBatch {
    return isNativeBatch(batch) ? batch : this.toNativeBatch(batch);
  }

  /** The logits (one per vocabulary entry) of a batch index of the last decode. */
  logits(index: number): Float32Array {
    expectInteger("index", index, { min: 0 });
    return callNative(() => this.native.logits(index));
  }

  /** The embedding of a batch index of the last decode (context created with embeddings). */
  embeddings(index: number): Float32Array {
    expectInteger("index", index, { min: 0 });
    return callNative(() => this.native.embeddings(index));
  }

  /** The pooled embedding of a sequence (context created with embeddings and a pooling type). */
  sequenceEmbeddings(seqId: number): Float32Array {
    expectInteger("seqId", seqId, { min: 0, max: this.info.nSeqMax - 1 });
    return callNative(() => this.native.sequenceEmbeddings(seqId));
  }

  /** Empties the KV cache of every sequence. */
  clear(): void {
    callNative(() => this.native.memoryClear());
  }

  /** Removes positions [p0, p1) of a sequence (-1: every sequence; p1 -1: to the end). */
  removeTokens(seqId: number, p0 = 0, p1 = -1): boolean {
    expectInteger("seqId", seqId, { min: -1, max: this.info.nSeqMax - 1 });
    expectInteger("p0", p0, { min: -1, max: 0x7fffffff });
    expectInteger("p1", p1, { min: -1, max: 0x7fffffff });
    return callNative(() => this.native.seqRemove(seqId, p0, p1));
  }

  /** Makes positions [p0, p1) of `src` part of `dst` too (shares the cells). */
  copySequence(src: number, dst: number, p0 = 0, p1 = -1): void {
    expectInteger("src", src, { min: 0, max: this.info.nSeqMax - 1 });
    expectInteger("dst", dst, { min: 0, max: this.info.nSeqMax - 1 });
    expectInteger("p0", p0, { min: -1, max: 0x7fffffff });
    expectInteger("p1", p1, { min: -1, max: 0x7fffffff });
    callNative(() => this.native.seqCopy(src, dst, p0, p1));
  }

  /** Drops every sequence but this one. */
  keepSequence(seqId: number): void {
    expectInteger("seqId", seqId, { min: 0, max: this.info.nSeqMax - 1 });
    callNative(() => this.native.seqKeep(seqId));
  }

  /** Adds `delta` to the positions [p0, p1) of a sequence (for context shifting). */
  shiftPositions(seqId: number, p0: number, p1: number, delta: number): void {
    expectInteger("seqId", seqId, { min: 0, max: this.info.nSeqMax - 1 });
    expectInteger("p0", p0, { min: -1, max: 0x7fffffff });
    expectInteger("p1", p1, { min: -1, max: 0x7fffffff });
    expectInteger("delta", delta, { min: -0x7fffffff, max: 0x7fffffff });
    callNative(() => this.native.seqShift(seqId, p0, p1, delta));
  }

  /** The lowest and highest position of a sequence in the KV cache, [-1, -1] when empty. */
  positionRange(seqId: number): [number, number] {
    expectInteger("seqId", seqId, { min: 0, max: this.info.nSeqMax - 1 });
    return callNative(() => this.native.seqPosRange(seqId));
  }

  /** The highest position of a sequence, -1 when empty. */
  maxPosition(seqId = 0): number {
    return this.positionRange(seqId)[1];
  }

  canShift(): boolean {
    return callNative(() => this.native.canShift());
  }

  /** The whole context state (KV cache, logits) as bytes. */
  saveState(): Promise<Buffer> {
    return this.#enqueue("state save", undefined, (handle) => handle.stateGet());
  }

  loadState(state: Uint8Array): Promise<void> {
    if (!(state instanceof Uint8Array)) throw new TypeError("state must be a Uint8Array or Buffer");
    return this.#enqueue("state load", undefined, (handle) => handle.stateSet(state));
  }

  /** Saves the state and the tokens it holds to a file. */
  saveStateFile(path: string, tokens: Int32Array | readonly number[]): Promise<void> {
    string("path", path);
    const ids = toTokenArray("tokens", tokens);
    return this.#enqueue("state save", undefined, (handle) => handle.stateSaveFile(path, ids));
  }

  /** Restores a state file; resolves to the tokens saved with it. */
  loadStateFile(path: string): Promise<Int32Array> {
    string("path", path);
    return this.#enqueue("state load", undefined, (handle) => handle.stateLoadFile(path));
  }

  /** llama.cpp's performance counters for this context. */
  perf(): ContextPerf {
    return callNative(() => this.native.perf());
  }

  resetPerf(): void {
    callNative(() => this.native.perfReset());
  }

  setThreads(nThreads: number, nThreadsBatch = nThreads): void {
    expectInteger("nThreads", nThreads, { min: 1, max: 1024 });
    expectInteger("nThreadsBatch", nThreadsBatch, { min: 1, max: 1024 });
    callNative(() => this.native.setThreads(nThreads, nThreadsBatch));
  }

  /**
   * Frees the context. A decode in flight is aborted and awaited first; queued operations reject
   * with DISPOSED. Calling it again returns the same promise.
   */
  dispose(): Promise<void> {
    if (this.#disposing !== null) return this.#disposing;
    const handle = this.#native;
    this.#native = null;
    handle?.dispose();
    this.#disposing = this.#tail.then(() => undefined);
    return this.#disposing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
