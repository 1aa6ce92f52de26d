// The addon's interface, as types only: what each native handle and function takes and returns.
// lib/core/binding.ts loads the binary; native/README.md maps each method to its C++.

export interface NativeAbortFlag {
  abort(): void;
  isAborted(): boolean;
}

export interface NativeModelInfo {
  description: string;
  size: number;
  nParams: number;
  nCtxTrain: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  hasEncoder: boolean;
  hasDecoder: boolean;
  isRecurrent: boolean;
  nVocab: number;
  vocabType: number;
  bos: number;
  eos: number;
  eot: number;
  sep: number;
  nl: number;
  pad: number;
  fimPre: number;
  fimSuf: number;
  fimMid: number;
  fimPad: number;
  fimRep: number;
  fimSep: number;
  addBos: boolean;
  addEos: boolean;
  addSep: boolean;
}

export interface NativeModel {
  dispose(): void;
  info(): NativeModelInfo;
  metadata(): Record<string, string>;
  tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array;
  detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string;
  tokenBytes(token: number, special: boolean): Uint8Array;
  tokenText(token: number): string;
  tokenAttributes(token: number): number;
  isEog(token: number): boolean;
  chatTemplate(name?: string): string | null;
}

export interface NativeLoadOptions {
  nGpuLayers?: number;
  mainGpu?: number;
  useMmap?: boolean;
  useMlock?: boolean;
  vocabOnly?: boolean;
  checkTensors?: boolean;
  /** Check an RWKV vocabulary for a byte llama.cpp's tokenizer would loop forever on. */
  checkRwkvVocabulary?: boolean;
  rpcServers?: string[];
  tensorSplit?: number[];
}

export interface NativeContextOptions {
  nCtx?: number;
  nBatch?: number;
  nUbatch?: number;
  nSeqMax?: number;
  nThreads?: number;
  nThreadsBatch?: number;
  embeddings?: boolean;
  poolingType?: number;
  flashAttn?: number;
  typeK?: string;
  typeV?: string;
  kvUnified?: boolean;
  swaFull?: boolean;
  offloadKqv?: boolean;
  noPerf?: boolean;
}

export interface NativeContextInfo {
  nCtx: number;
  nCtxSeq: number;
  nBatch: number;
  nUbatch: number;
  nSeqMax: number;
  nThreads: number;
  nThreadsBatch: number;
  poolingType: number;
  nEmbd: number;
  stateSize: number;
}

export interface NativeBatchArrays {
  tokens: Int32Array;
  positions: Int32Array;
  seqIds: Int32Array;
  logits: Uint8Array;
}

export interface NativeSampleResult {
  /** The sampled tokens, in sample order; with drafts, `counts[i]` of them per sample. */
  tokens: Int32Array;
  /** One per token. */
  logprobs?: Float32Array;
  top?: Array<{ ids: Int32Array; logprobs: Float32Array }>;
  /** With drafts: tokens per sample, and per sample the tokens drafted and taken. */
  counts?: Int32Array;
  drafted?: Int32Array;
  accepted?: Int32Array;
}

export interface NativePerf {
  startMs: number;
  loadMs: number;
  promptEvalMs: number;
  evalMs: number;
  promptTokens: number;
  evalTokens: number;
  reusedGraphs: number;
}

/** One sequence generated ahead of JavaScript (native/context_generate.cpp, GenerateAheadWorker). */
export interface NativeGenerateRequest {
  /** The token to decode first: sampled earlier, not yet in the KV cache. */
  token: number;
  position: number;
  seqId: number;
  /** Tokens to sample at most. */
  maxTokens: number;
  /** Decodes only below this position. */
  maxPosition: number;
  /** End the run after sampling an end-of-generation token. */
  stopAtEog: boolean;
  /** With a drafter attached: the tokens the sequence holds (`position` of them); the run speculates. */
  history?: Int32Array;
}

export interface NativeGenerateResult {
  /** The tokens the run put into the KV cache, in order. */
  decoded: Int32Array;
  /** Every token sampled, in order; the last is not in the KV cache. */
  sampled: Int32Array;
  /** Tokens the drafter proposed, and how many of them were taken (0 without a drafter). */
  drafted: number;
  accepted: number;
  /** Decodes made: one per token, or (speculating) one per step. */
  steps: number;
}

/** A LoRA adapter loaded for a model (loadLora). */
export interface NativeLora {
  dispose(): void;
  info(): { metadata: Record<string, string>; invocationTokens: Int32Array };
}

/** What a multimodal projector takes (loadProjector). */
export interface NativeProjectorInfo {
  vision: boolean;
  audio: boolean;
  /** The audio sample rate it expects; -1 without audio. */
  audioSampleRate: number;
  /** The text that places a media item in a prompt. */
  marker: string;
  /** Positions by M-RoPE (Qwen2-VL's family): a media chunk takes fewer positions than tokens. */
  mrope: boolean;
}

/** A media chunk of a MediaPrompt, where the prompt's token array holds its placeholders. */
export interface NativeMediaChunk {
  /** Its index among the prompt's chunks (evalMedia's `chunk`). */
  chunk: number;
  /** Where its placeholders start in the token array. */
  start: number;
  nTokens: number;
  nPos: number;
  /** The SHA-256 of the file it came from. */
  id: string;
  audio: boolean;
}

/** A prompt split into text and preprocessed media chunks (Projector.tokenize). */
export interface NativeMediaPrompt {
  dispose(): void;
  layout(): { tokens: Int32Array; media: NativeMediaChunk[] };
}

/** A multimodal projector loaded for a model (loadProjector). */
export interface NativeProjector {
  dispose(): void;
  info(): NativeProjectorInfo;
  tokenize(text: string, media: Uint8Array[], addSpecial: boolean, parseSpecial: boolean): Promise<NativeMediaPrompt>;
}

/** Speculative decoding's drafter of a context (setDrafter). */
export interface NativeDrafterOptions {
  /** "model": a draft model's context; "ngram": lookup in the sequence's own tokens. */
  type: "model" | "ngram";
  /** Most tokens drafted per verifying decode. */
  nDraft: number;
  /** A draft model's least probability of a drafted token. */
  pMin: number;
  /** Tokens an n-gram lookup matches before it drafts what followed them. */
  ngramSize: number;
}

export interface NativeContext {
  dispose(): void;
  info(): NativeContextInfo;
  decode(batch: NativeBatchArrays, abort?: NativeAbortFlag): Promise<void>;
  decodeAndSample(
    batch: NativeBatchArrays,
    samplers: NativeSampler[],
    indices: Int32Array,
    abort?: NativeAbortFlag,
    nLogprobs?: number,
    drafts?: Array<{ history: Int32Array; nDraft: number } | null>,
  ): Promise<NativeSampleResult>;
  generateAhead(
    request: NativeGenerateRequest,
    sampler: NativeSampler,
    onTokens: (first: number, tokens: Int32Array, drafted: number, accepted: number) => void,
    handled: Int32Array,
    stop: NativeAbortFlag,
    abort?: NativeAbortFlag,
  ): Promise<NativeGenerateResult>;
  setDrafter(options: NativeDrafterOptions | null, draft?: NativeContext): void;
  setLoras(adapters: NativeLora[], scales: number[]): void;
  /** Encodes a media chunk and decodes it into `seqId` from position `nPast`; the position after it. */
  evalMedia(prompt: NativeMediaPrompt, chunk: number, seqId: number, nPast: number, abort?: NativeAbortFlag): Promise<number>;
  logits(index: number): Float32Array;
  embeddings(index: number): Float32Array;
  sequenceEmbeddings(seqId: number): Float32Array;
  memoryClear(): void;
  seqRemove(seqId: number, p0: number, p1: number): boolean;
  seqCopy(src: number, dst: number, p0: number, p1: number): void;
  seqKeep(seqId: number): void;
  seqShift(seqId: number, p0: number, p1: number, delta: number): void;
  seqPosRange(seqId: number): [number, number];
  canShift(): boolean;
  stateGet(): Promise<Buffer>;
  stateSet(state: Uint8Array): Promise<void>;
  stateSaveFile(path: string, tokens: Int32Array): Promise<void>;
  stateLoadFile(path: string): Promise<Int32Array>;
  perf(): NativePerf;
  perfReset(): void;
  setThreads(nThreads: number, nThreadsBatch: number): void;
}

/** The sampling parameters of lib/core/sampling.ts, resolved and named as there (native/sampler.cpp reads them). */
export type NativeSamplerOptions = Readonly<Record<string, unknown>>;

export interface NativeSampler {
  sample(context: NativeContext, index: number): number;
  accept(token: number): void;
  reset(): void;
  dispose(): void;
  describe(): string[];
}

export interface NativeQuantizeOptions {
  ftype: number;
  nThreads?: number;
  allowRequantize?: boolean;
  leaveOutputTensor?: boolean;
  pure?: boolean;
  onlyCopy?: boolean;
  /** ggml type ids. */
  outputTensorType?: number;
  tokenEmbeddingType?: number;
  /** Importance per input column of each weight matrix, by tensor name. */
  imatrix?: { names: string[]; values: Float32Array[] };
  /** GGUF metadata written into the output (strings up to 127 bytes, integers). */
  metadata?: { keys: string[]; values: Array<string | number> };
}

export interface NativeBuildInfo {
  llamaCommit: string;
  compiler: string;
  addonPath: string;
  portable: boolean;
  amxDisabled: boolean;
  supportsMmap: boolean;
  supportsMlock: boolean;
  supportsGpuOffload: boolean;
  supportsRpc: boolean;
  maxDevices: number;
  maxParallelSequences: number;
  backends: string[];
  /** The CPU code in use: a portable build's variant chosen for this CPU (`zen4`, `haswell`, …), or `native`. */
  cpuVariant: string;
  /** The file the CPU backend was loaded from (the addon itself unless portable). */
  cpuBackendPath: string;
  /** The CPU features that backend uses (`AVX2`, `AVX512`, `AMX_INT8`, …). */
  cpuFeatures: string[];
}

export interface NativeDevice {
  name: string;
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel";
  memoryFree: number;
  memoryTotal: number;
}

export interface NativeChatTemplates {
  /** The inputs and the result as JSON text (lib/core/chat-templates.ts gives both their types). */
  apply(inputs: string): string;
  source(): string;
  supportsThinking(): boolean;
}

export interface NativeChatParser {
  /** The reply so far with `delta` added, parsed; JSON text of ReplyUpdate. */
  update(delta: string, final: boolean): string;
}

export interface NativeBinding {
  AbortFlag: new () => NativeAbortFlag;
  ChatTemplates: new (model: NativeModel, override: string, overrideName: string) => NativeChatTemplates;
  ChatParser: new (params: string) => NativeChatParser;
  Sampler: new (model: NativeModel, options: NativeSamplerOptions) => NativeSampler;
  loadModel(
    path: string,
    options: NativeLoadOptions,
    onProgress?: (progress: number) => void,
    abort?: NativeAbortFlag,
  ): Promise<NativeModel>;
  createContext(model: NativeModel, options: NativeContextOptions): Promise<NativeContext>;
  loadLora(model: NativeModel, path: string): Promise<NativeLora>;
  loadProjector(
    model: NativeModel,
    path: string,
    options: { nThreads?: number; useGpu?: boolean; flashAttn?: number },
    abort?: NativeAbortFlag,
  ): Promise<NativeProjector>;
  quantize(
    input: string,
    output: string,
    options: NativeQuantizeOptions,
    onProgress?: (fraction: number) => void,
    abort?: NativeAbortFlag,
  ): Promise<void>;
  setLogger(callback: ((level: number, text: string) => void) | null, minLevel?: number): void;
  systemInfo(): string;
  buildInfo(): NativeBuildInfo;
  devices(): NativeDevice[];
  ftypeName(ftype: number): string;
  applyChatTemplate(template: string, roles: string[], contents: string[], addAssistant: boolean): string | null;
  builtinChatTemplates(): string[];
  rpcFailures(): { count: number; message: string };
  startRpcServer(endpoint: string, nThreads: number): Promise<void>;
}
