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
} from "./backend.js";
export { LlamaModel, type LoadModelOptions, type TokenizeOptions, type DetokenizeOptions, type ModelInfo } from "./model.js";
export {
  LlamaContext,
  type ContextOptions,
  type Batch,
  type DecodeOptions,
  type DecodeAndSampleOptions,
  type SampleRequest,
  type SampleResult,
  type ContextPerf,
  type ContextInfo,
  type PoolingType,
  type FlashAttention,
} from "./context.js";
export { LlamaSampler, type SamplerOptions, type MirostatOptions } from "./sampler.js";
export { TokenDecoder } from "./token-decoder.js";
export {
  quantize,
  quantTypes,
  parseQuantType,
  QUANT_TYPES,
  IMATRIX_TYPES,
  type QuantType,
  type QuantTypeInfo,
  type QuantizeOptions,
} from "./quantize.js";
export { readImatrix, type ImportanceMatrix } from "./imatrix.js";
export {
  perplexity,
  compareModels,
  type PerplexityOptions,
  type PerplexityResult,
  type ModelComparison,
  type Distribution,
  type Estimate,
} from "./perplexity.js";
export { measureSpeed, type SpeedOptions, type SpeedResult, type SpeedProgress, type ThroughputTest, type TimeToFirstToken } from "./speed.js";
export { bench, type BenchOptions, type BenchProgress, type BenchReport, type BenchModelResult, type BaseDivergence } from "./bench.js";
export { toMarkdown, toCsv, toJson, toHtml, toChartSvg, renderReport } from "./report.js";
export { generateTokens, type GenerateOptions } from "./generate.js";
export {
  Llama,
  type LlamaLoadOptions,
  type SamplingOptions,
  type CompletionOptions,
  type ChatCompletionOptions,
  type ResponseFormat,
  type MirostatSampling,
  type EmbedOptions,
} from "./llama.js";
export type * from "./completion-types.js";
export { jsonSchemaGrammar, jsonObjectGrammar } from "./json-grammar.js";
export { startRpcServer, type RpcServerOptions, type RpcServer } from "./rpc.js";
export { startServer, OpenAIServer, type ServerOptions } from "./server/index.js";
