// The options of Llama.load, createCompletion and createChatCompletion: their types, checks and the
// defaults that are Llama's own. Sampling parameters come from lib/core/sampling.ts, where each is
// named, checked and defaulted.
import { maxParallelSequences } from "../core/backend.js";
import { MAX_CONTEXT_TOKENS, type FlashAttention } from "../core/context.js";
import { checkEndpoints } from "../core/rpc.js";
import { SAMPLING_PARAMETERS, samplingChecks, type MirostatOptions, type SamplerOptions } from "../core/sampling.js";
import { LlamaError } from "../errors.js";
import { boolean, checkOptions, expectObject, expectString, func, integer, number, signal, string } from "../validate.js";
import { REASONING_FORMATS, type ReasoningFormat } from "../core/jinja-templates.js";
import { checkContextShift, type ContextShiftOption } from "./context-shift.js";
import type { ChatMessage, ChatTool, ChatToolChoice } from "./types.js";
import { checkLoraList, type LoraOptions } from "./adapters.js";
import { hubOptionChecks, type HubOptions } from "../hub/resolve.js";

/** How media may be read. */
export interface MediaAccess {
  /** Local files (file:// URLs or paths): false (default), true, or the folder they must be in. */
  allowLocalMedia?: boolean | string;
  /** Reads an http(s) URL; without it remote URLs are refused. */
  fetchMedia?: (url: string, signal?: AbortSignal) => Promise<Uint8Array>;
}

/** A media item of a completion: a file's bytes, or { data, type } with data as bytes or base64. */
export type CompletionMedia = Uint8Array | { data: Uint8Array | string; type?: string };

export interface LlamaLoadOptions extends HubOptions, MediaAccess {
  /**
   * The GGUF model: a path, or a model on the Hugging Face Hub (`hf:owner/repo:Q4_K_M`,
   * `hf:owner/repo/path/file.gguf`), fetched into the Hub cache on first use. Required.
   */
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
  /**
   * When a generation fills its sequence's context, discard the older half of the tokens after the
   * first `keep` of the prompt (and the BOS) and go on, as llama.cpp's --context-shift --keep N;
   * true: { keep: 0 }. Default false: the generation ends there (finish_reason "length").
   */
  contextShift?: ContextShiftOption;
  /**
   * Chat template: a Jinja template (a string, e.g. a .jinja file's contents), rendered by llama.cpp's
   * Jinja engine, or a built-in name (see builtinChatTemplates()) for llama.cpp's older formatter,
   * which offers no tools. Default: the model's (its GGUF's tokenizer.chat_template).
   */
  chatTemplate?: string;
  /** Render chat templates with Jinja, as llama-server does. false: llama.cpp's older formatter, no tools. Default true. */
  jinja?: boolean;
  /** ggml rpc-server workers ("host:port") that take offloaded layers (see nGpuLayers). */
  rpcServers?: string[];
  /** Share of the offloaded layers per device: RPC servers first, then local GPUs. */
  tensorSplit?: number[];
  /**
   * Speculative decoding: a small draft model sharing the vocabulary (`{ modelPath, nDraft, pMin }`),
   * or prompt lookup in the sequence's own tokens (`{ type: "ngram", nDraft, ngramSize }`). The
   * output is what generation without a draft gives. Default: none.
   */
  draft?: DraftOptions;
  /** LoRA adapters applied to every request that names none, each loaded once. Default: none. */
  lora?: LoraOptions[];
  /**
   * A multimodal projector (mmproj GGUF) for images and audio: a path or an hf: name. Chat content
   * parts image_url and input_audio, and completions' `media`, then reach the model. Default: none.
   */
  mmprojPath?: string;
  onProgress?: (progress: number) => void;
  signal?: AbortSignal;
}

/** Llama.load's draft: where draft tokens come from, and how many per decode. */
export type DraftOptions =
  | {
      type?: "model";
      /** The draft model's GGUF: the same vocabulary as the model, much smaller. */
      modelPath: string;
      /** Most tokens drafted per decode. Default 16, llama-server's. */
      nDraft?: number;
      /** Least probability of a drafted token (llama.cpp's --draft-p-min). Default 0.75. */
      pMin?: number;
      /** The draft model's GPU layers (-1: all). Default: the model's nGpuLayers. */
      nGpuLayers?: number;
    }
  | {
      type: "ngram";
      /** Most tokens drafted per decode. Default 16. */
      nDraft?: number;
      /** Tokens that must repeat before what followed them earlier is drafted. Default 3. */
      ngramSize?: number;
    };

function checkDraft(name: string, value: unknown): void {
  const draft = expectObject(name, value) as { type?: unknown };
  if (draft.type === "ngram") {
    checkOptions(name, value, { type: string, nDraft: integer({ min: 1, max: 256 }), ngramSize: integer({ min: 1, max: 1024 }) });
    return;
  }
  if (draft.type !== undefined && draft.type !== "model") throw new RangeError(`${name}.type must be "model" or "ngram"`);
  const o = checkOptions<DraftOptions & { type?: "model" }>(name, value, {
    type: string,
    modelPath: string,
    nDraft: integer({ min: 1, max: 256 }),
    pMin: number({ min: 0, max: 1 }),
    nGpuLayers: integer({ min: -1 }),
  });
  if (o.modelPath === undefined) throw new TypeError(`${name}.modelPath is required for a draft model`);
}

/** Mirostat sampling of a completion or chat (the sampler's MirostatOptions). */
export type MirostatSampling = MirostatOptions;

/** The sampling parameters (lib/core/sampling.ts) and what ends a generation. */
export interface SamplingOptions extends SamplerOptions {
  /** Stop strings: the text ends before the first one. */
  stop?: string | string[];
  /** Tokens to generate (0 or null: until end of generation or a full context). */
  maxTokens?: number | null;
  /** LoRA adapters for this request, instead of Llama.load's (an empty list: the base model). */
  lora?: LoraOptions[];
  /** This request's context shift (see LlamaLoadOptions.contextShift). Default: the Llama's. */
  contextShift?: ContextShiftOption;
  signal?: AbortSignal;
}

export interface CompletionOptions extends SamplingOptions {
  /** Images or audio, one per media marker (`<__media__>`) in the prompt, in order (a Llama with mmprojPath). */
  media?: CompletionMedia[];
  /** Report the log-probabilities of each token and this many alternatives. */
  logprobs?: number | null;
  /** Prepend the prompt to the returned text. */
  echo?: boolean;
  /** Text after the completion: fill-in-the-middle, for models with FIM tokens. */
  suffix?: string | null;
  /** Drop the start of a prompt too long for the context instead of failing with CONTEXT_FULL. */
  truncate?: boolean;
  stream?: boolean;
  /** With stream: includeUsage sends a last chunk with the usage and no choices. */
  streamOptions?: { includeUsage?: boolean };
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
  /** Functions the model may call (OpenAI's tools). */
  tools?: ChatTool[];
  /** "auto" (default), "none", "required", or one function by name (then required). */
  toolChoice?: ChatToolChoice;
  /** Allow several calls in one reply, where the template supports it. Default false. */
  parallelToolCalls?: boolean;
  /** Extra variables for the template, e.g. { enable_thinking: false }. */
  chatTemplateKwargs?: Record<string, unknown>;
  /**
   * Where a reasoning model's thinking goes: "auto"/"deepseek" (default "auto"): apart, in
   * reasoning_content; "none": left in the content as the model wrote it.
   */
  reasoningFormat?: ReasoningFormat;
  stream?: boolean;
  /** With stream: includeUsage sends a last chunk with the usage and no choices. */
  streamOptions?: { includeUsage?: boolean };
}

export interface EmbedOptions {
  /** Scale each vector to unit length. Default false. */
  normalize?: boolean;
  /** Stops the work before the next text, or mid-decode: the promise rejects with ABORTED. */
  signal?: AbortSignal;
}

/** Llama's own defaults, where they differ from the sampler's: llama-cpp-python's. */
export const COMPLETION_DEFAULTS = { maxTokens: 16 } as const;
export const CHAT_DEFAULTS = { temperature: 0.2, maxTokens: null } as const;
export const LOAD_DEFAULTS = { nCtx: 512, nBatch: 512, nUbatch: 512, nParallel: 1, nGpuLayers: 0 } as const;

/** Llama.load's flashAttn (true, false, "auto" or none) as a context's setting. */
export function flashAttentionOf(option: LlamaLoadOptions["flashAttn"]): FlashAttention {
  return option === undefined || option === "auto" ? "auto" : option ? "on" : "off";
}

const samplingOptionChecks = {
  ...samplingChecks,
  stop: (name: string, value: unknown) => {
    const list = Array.isArray(value) ? value : [value];
    list.forEach((s, i) => expectString(Array.isArray(value) ? `${name}[${i}]` : name, s));
  },
  maxTokens: (name: string, value: unknown) => {
    if (value !== null) integer({ min: 0 })(name, value);
  },
  lora: checkLoraList,
  contextShift: checkContextShift,
  signal,
};

export function checkLoadOptions(options: LlamaLoadOptions): LlamaLoadOptions & { modelPath: string } {
  const o = checkOptions<LlamaLoadOptions>("options", options, {
    modelPath: string,
    vocabOnly: boolean,
    nCtx: integer({ min: 0, max: MAX_CONTEXT_TOKENS }),
    nBatch: integer({ min: 1, max: 1 << 20 }),
    nUbatch: integer({ min: 1, max: 1 << 20 }),
    nThreads: integer({ min: 1, max: 1024 }),
    nThreadsBatch: integer({ min: 1, max: 1024 }),
    nGpuLayers: integer({ min: -1 }),
    seed: SAMPLING_PARAMETERS.seed.check,
    verbose: boolean,
    embedding: boolean,
    useMmap: boolean,
    useMlock: boolean,
    flashAttn: (name: string, value: unknown) => {
      if (value !== "auto" && typeof value !== "boolean") throw new TypeError(`${name} must be true, false or "auto"`);
    },
    nParallel: integer({ min: 1, max: maxParallelSequences() }),
    contextShift: checkContextShift,
    chatTemplate: string,
    jinja: boolean,
    rpcServers: (name, value) => checkEndpoints(name, value),
    tensorSplit: (name, value) => {
      if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of numbers`);
      value.forEach((v, i) => number({ min: 0 })(`${name}[${i}]`, v));
    },
    draft: checkDraft,
    lora: checkLoraList,
    onProgress: func,
    ...hubOptionChecks,
    mmprojPath: string,
    allowLocalMedia: (name, value) => {
      if (typeof value !== "boolean") string(name, value);
    },
    fetchMedia: func,
  });
  if (o.modelPath === undefined) throw new TypeError("options.modelPath is required");
  return o;
}

export function checkCompletionOptions(prompt: unknown, options: CompletionOptions): CompletionOptions {
  if (typeof prompt !== "string" && !Array.isArray(prompt) && !(prompt instanceof Int32Array)) {
    throw new TypeError("prompt must be a string or an array of token ids");
  }
  return checkOptions<CompletionOptions>("options", options, {
    ...samplingOptionChecks,
    logprobs: (name, value) => {
      if (value !== null) integer({ min: 0, max: 100 })(name, value);
    },
    echo: boolean,
    suffix: (name, value) => {
      if (value !== null) string(name, value);
    },
    truncate: boolean,
    stream: boolean,
    streamOptions: checkStreamOptions,
    media: (name, value) => {
      if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of Uint8Array or { data, type } items`);
    },
  });
}

function checkStreamOptions(name: string, value: unknown): void {
  const so = expectObject(name, value);
  for (const key of Object.keys(so)) if (key !== "includeUsage") throw new TypeError(`${name}.${key} is not a known option`);
  if (so.includeUsage !== undefined) boolean(`${name}.includeUsage`, so.includeUsage);
}

/** What a chat renders besides its messages (formatChat takes these too). */
export type ChatFormatOptions = Pick<ChatCompletionOptions, "tools" | "toolChoice" | "parallelToolCalls" | "chatTemplateKwargs" | "reasoningFormat">;

/** The checks of ChatFormatOptions; the tools and the tool choice are checked in detail by chat-messages.ts. */
const chatFormatChecks: { [K in keyof ChatFormatOptions]-?: (name: string, value: unknown) => unknown } = {
  tools: (name, value) => {
    if (!Array.isArray(value)) throw new LlamaError("INVALID_ARGUMENT", `${name} must be an array of tools`);
  },
  toolChoice: () => {},
  parallelToolCalls: boolean,
  chatTemplateKwargs: (name, value) => expectObject(name, value),
  reasoningFormat: (name, value) => {
    if (!REASONING_FORMATS.includes(value as ReasoningFormat)) throw new RangeError(`${name} must be one of ${REASONING_FORMATS.join(", ")}`);
  },
};

export function checkChatFormatOptions(options: ChatFormatOptions): ChatFormatOptions {
  return checkOptions<ChatFormatOptions>("options", options, chatFormatChecks);
}

export function checkChatOptions(options: ChatCompletionOptions): ChatCompletionOptions {
  const o = checkOptions<ChatCompletionOptions>("options", options, {
    ...samplingOptionChecks,
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
    ...chatFormatChecks,
    stream: boolean,
    streamOptions: checkStreamOptions,
  });
  if (o.grammar !== undefined && o.responseFormat !== undefined && o.responseFormat.type !== "text") {
    throw new RangeError("options.grammar and options.responseFormat both constrain the output: pass one of them");
  }
  if (o.topLogprobs !== undefined && !o.logprobs) throw new RangeError("options.topLogprobs needs options.logprobs: true");
  return o;
}

/** The sampler's options of a request: its sampling parameters, with Llama's defaults where it gives none. */
export function samplerOptionsOf(o: SamplingOptions, defaults: { temperature?: number; seed?: number }): SamplerOptions {
  const sampler: SamplerOptions = {};
  for (const name of Object.keys(SAMPLING_PARAMETERS) as Array<keyof SamplerOptions>) {
    if (o[name] !== undefined) (sampler as Record<string, unknown>)[name] = o[name];
  }
  sampler.temperature ??= defaults.temperature;
  sampler.seed ??= defaults.seed;
  return sampler;
}

/** A request's maxTokens as a number of tokens (Infinity: no limit). */
export function tokenLimit(maxTokens: number | null | undefined, fallback: number | null): number {
  const limit = maxTokens === undefined ? fallback : maxTokens;
  return limit === null || limit === 0 ? Infinity : limit;
}

export function stopList(stop: string | string[] | undefined): string[] {
  return stop === undefined ? [] : Array.isArray(stop) ? stop : [stop];
}
