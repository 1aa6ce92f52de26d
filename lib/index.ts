export { LlamaError, type LlamaErrorCode } from "./errors.js";
export {
  setLogger,
  systemInfo,
  buildInfo,
  binaryPath,
  devices,
  defaultThreads,
  type BuildInfo,
  type LogLevel,
  type Logger,
} from "./core/backend.js";
export { LlamaModel, type LoadModelOptions } from "./core/model.js";
export { LoadedModel, type TokenizeOptions, type DetokenizeOptions, type ModelInfo } from "./core/loaded-model.js";
export {
  LlamaContext,
  type ContextOptions,
  type DecodeOptions,
  type DecodeAndSampleOptions,
  type SampleRequest,
  type SampleResult,
  type ContextPerf,
  type ContextInfo,
  type PoolingType,
  type FlashAttention,
} from "./core/context.js";
export type { Batch } from "./core/batch.js";
export type { DrafterOptions, GenerateAheadOptions } from "./core/run-ahead.js";
export { LlamaLora } from "./core/lora.js";
export type { LoraOptions } from "./completion/adapters.js";
export { LlamaSampler, type LogitsSource, type SamplerOptions, type MirostatOptions } from "./core/sampler.js";
export type { LogitBias, GrammarTrigger } from "./core/sampling.js";
export type { ReasoningFormat } from "./core/jinja-templates.js";
export { TokenDecoder } from "./core/token-decoder.js";
export {
  quantize,
  quantTypes,
  parseQuantType,
  QUANT_TYPES,
  IMATRIX_TYPES,
  type QuantType,
  type QuantTypeInfo,
  type QuantizeOptions,
} from "./tools/quantize.js";
export { readImatrix, type ImportanceMatrix } from "./tools/imatrix.js";
export {
  perplexity,
  compareModels,
  type PerplexityOptions,
  type PerplexityResult,
  type ModelComparison,
  type Distribution,
  type Estimate,
} from "./tools/perplexity.js";
export { measureSpeed, type SpeedOptions, type SpeedResult, type SpeedProgress, type ThroughputTest, type TimeToFirstToken } from "./tools/speed.js";
export { bench, type BenchOptions, type BenchProgress, type BenchReport, type BenchModelResult, type BaseDivergence } from "./tools/bench.js";
export { toMarkdown, toCsv, toJson, toHtml, toChartSvg, renderReport } from "./tools/report.js";
export { generateTokens, type GenerateOptions } from "./completion/generate-tokens.js";
export {
  Llama,
  type LlamaLoadOptions,
  type SamplingOptions,
  type CompletionOptions,
  type DraftOptions,
  type ChatCompletionOptions,
  type ChatFormatOptions,
  type ResponseFormat,
  type MirostatSampling,
  type EmbedOptions,
  type FromPretrainedOptions,
} from "./completion/llama.js";
export type { RerankOptions } from "./completion/rerank.js";
export type { ContextShiftOption, ContextShiftOptions } from "./completion/context-shift.js";
export type { SlotStates, SlotTransfer } from "./completion/slot-state.js";
export type * from "./completion/types.js";
export { jsonSchemaGrammar, jsonObjectGrammar } from "./completion/json-grammar.js";
export { resolveModelFile, type HubOptions, type ResolveModelOptions } from "./hub/resolve.js";
export type { HubModelSpec } from "./hub/spec.js";
export type { DownloadProgress } from "./hub/download.js";
export { listCachedModels, defaultCacheDir, type CachedRepo, type CachedRevision, type CachedFile } from "./hub/cache.js";
export { LlamaProjector, MediaPrompt, type ProjectorInfo, type ProjectorOptions, type MediaChunk } from "./core/projector.js";
export { synthesizeProjector, type ProjectorKind } from "./tools/synth-mmproj.js";
export { seededImage, encodePng, encodeBmp, seededSound, encodeWav, type RgbImage } from "./tools/synth-media.js";
export type { CompletionMedia, MediaAccess } from "./completion/options.js";
export { startRpcServer, type RpcServerOptions, type RpcServer } from "./core/rpc.js";
export { startServer, OpenAIServer, type ServerOptions } from "./server/index.js";
