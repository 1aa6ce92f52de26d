// The one seam between TypeScript and the addon: it loads the binary and declares everything the
// addon exports. Nothing else in lib/ touches the binary.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

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

export interface NativeBatch {
  tokens: Int32Array;
  positions: Int32Array;
  seqIds: Int32Array;
  logits: Uint8Array;
}

export interface NativeSampleResult {
  tokens: Int32Array;
  logprobs?: Float32Array;
  top?: Array<{ ids: Int32Array; logprobs: Float32Array }>;
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

export interface NativeContext {
  dispose(): void;
  info(): NativeContextInfo;
  decode(batch: NativeBatch, abort?: NativeAbortFlag): Promise<void>;
  decodeAndSample(
    batch: NativeBatch,
    samplers: NativeSampler[],
    indices: Int32Array,
    abort?: NativeAbortFlag,
    nLogprobs?: number,
  ): Promise<NativeSampleResult>;
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

export interface NativeSamplerOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  penaltyLastN?: number;
  repeatPenalty?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  mirostat?: number;
  mirostatTau?: number;
  mirostatEta?: number;
  seed?: number;
  grammar?: string;
  grammarRoot?: string;
  logitBiasTokens?: Int32Array;
  logitBiasValues?: Float32Array;
}

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
  outputTensorType?: number;
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
}

export interface NativeDevice {
  name: string;
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel";
  memoryFree: number;
  memoryTotal: number;
}

export interface NativeBinding {
  AbortFlag: new () => NativeAbortFlag;
  Sampler: new (model: NativeModel, options: NativeSamplerOptions) => NativeSampler;
  loadModel(
    path: string,
    options: NativeLoadOptions,
    onProgress?: (progress: number) => void,
    abort?: NativeAbortFlag,
  ): Promise<NativeModel>;
  createContext(model: NativeModel, options: NativeContextOptions): Promise<NativeContext>;
  quantize(input: string, output: string, options: NativeQuantizeOptions): Promise<void>;
  setLogger(callback: ((level: number, text: string) => void) | null, minLevel?: number): void;
  systemInfo(): string;
  buildInfo(): NativeBuildInfo;
  devices(): NativeDevice[];
  ftypeName(ftype: number): string;
  applyChatTemplate(template: string, roles: string[], contents: string[], addAssistant: boolean): string | null;
  builtinChatTemplates(): string[];
}

/** The package root: the nearest folder above this file with llama-napi's package.json. */
function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "llama-napi") {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`llama-napi: package root not found above ${__dirname}`);
    dir = parent;
  }
}

const requireHere = createRequire(__filename);

function loadBinding(): { binding: NativeBinding; path: string } {
  const override = process.env.LLAMA_NAPI_BINARY;
  if (override) return { binding: requireHere(override) as NativeBinding, path: override };
  const root = packageRoot();
  const nodeGypBuild = requireHere("node-gyp-build") as { (dir: string): unknown; resolve(dir: string): string };
  const path = nodeGypBuild.resolve(root);
  return { binding: requireHere(path) as NativeBinding, path };
}

const loaded = loadBinding();

/** The addon's exports. */
export const native: NativeBinding = loaded.binding;
/** The file the addon was loaded from. */
export const nativePath: string = loaded.path;
