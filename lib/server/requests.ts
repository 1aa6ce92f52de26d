// OpenAI request bodies to Llama options. Every field is checked under its OpenAI name, so that a
// bad request gets a 400 naming the field rather than an error from deeper down. Unknown fields are
// ignored, as OpenAI clients send extras (user, metadata, store, ...).
import type { ChatContentPart, ChatMessage } from "../completion/types.js";
import { LlamaError } from "../errors.js";
import { jsonObjectGrammar, jsonSchemaGrammar } from "../completion/json-grammar.js";
import type { ChatCompletionOptions, CompletionOptions, SamplingOptions } from "../completion/llama.js";
import type { LoraOptions } from "../completion/adapters.js";
import { REASONING_FORMATS } from "../core/jinja-templates.js";
import { MAX_SEED, scalarSamplingParameters, type SamplingParameterName } from "../core/sampling.js";

/** An error in OpenAI's shape: `{ error: { message, type, param, code } }` with its HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null,
    readonly param: string | null = null,
    /** Headers the response needs, e.g. WWW-Authenticate with a 401. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function badRequest(message: string, param: string | null = null, code = "invalid_value"): ApiError {
  return new ApiError(400, message, "invalid_request_error", code, param);
}

/** Any error as the ApiError to send: request mistakes are 400s, the rest 500s (503 when aborted by shutdown). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof LlamaError) {
    switch (err.code) {
      case "CONTEXT_FULL":
        return badRequest(err.message, null, "context_length_exceeded");
      case "INVALID_GRAMMAR":
        return badRequest(err.message, "grammar", "invalid_grammar");
      case "INVALID_ARGUMENT":
        return badRequest(err.message);
      case "INVALID_MEDIA":
        return badRequest(err.message, "messages", "invalid_media");
      case "CHAT_TEMPLATE":
        return badRequest(err.message, "messages", "chat_template");
      case "UNSUPPORTED":
      case "TOKENIZE_FAILED":
        return badRequest(err.message, null, "unsupported");
      case "ABORTED":
      case "DISPOSED":
        return new ApiError(503, "the server is shutting down", "unavailable_error", "shutting_down");
      default:
        return new ApiError(500, err.message, "server_error", err.code.toLowerCase());
    }
  }
  // The Llama API's own argument checks (what this module lets through, it judges).
  if (err instanceof TypeError || err instanceof RangeError) return badRequest(err.message);
  return new ApiError(500, err instanceof Error ? err.message : String(err), "server_error", "internal_error");
}

export interface RequestLimits {
  /** The most tokens one request may generate; also the default for chat. */
  maxTokensCap: number;
  nVocab: number;
  /** The LoRA adapters loaded at start, by id (their index), with the scales requests get by default. */
  adapters: readonly LoraOptions[];
  /** Whether the Llama shifts a full context (then a request's n_keep applies, as in llama-server). */
  contextShift: boolean;
}

interface Bounds {
  min?: number;
  max?: number;
}

/** Typed access to a request body's fields; null counts as absent, as in OpenAI's API. */
export class Fields {
  readonly raw: Record<string, unknown>;

  constructor(body: unknown) {
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest("the request body must be a JSON object");
    this.raw = body as Record<string, unknown>;
  }

  present(name: string): boolean {
    return this.raw[name] !== undefined && this.raw[name] !== null;
  }

  number(name: string, bounds: Bounds = {}): number | undefined {
    const value = this.raw[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value)) throw badRequest(`${name} must be a number`, name);
    if ((bounds.min !== undefined && value < bounds.min) || (bounds.max !== undefined && value > bounds.max)) {
      throw badRequest(`${name} must be between ${bounds.min ?? "-inf"} and ${bounds.max ?? "inf"}, got ${value}`, name);
    }
    return value;
  }

  int(name: string, bounds: Bounds = {}): number | undefined {
    const value = this.number(name, bounds);
    if (value !== undefined && !Number.isInteger(value)) throw badRequest(`${name} must be an integer`, name);
    return value;
  }

  bool(name: string): boolean | undefined {
    const value = this.raw[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "boolean") throw badRequest(`${name} must be a boolean`, name);
    return value;
  }

  string(name: string): string | undefined {
    const value = this.raw[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "string") throw badRequest(`${name} must be a string`, name);
    return value;
  }

  /** n and best_of: one choice per request is all this server makes. */
  onlyOne(name: string): void {
    const value = this.int(name, { min: 1 });
    if (value !== undefined && value !== 1) throw badRequest(`${name} must be 1: this server returns one choice per request`, name, "unsupported");
  }
}

const MAX_STOPS = 16;

function stopOf(f: Fields): string[] | undefined {
  const value = f.raw.stop;
  if (value === undefined || value === null) return undefined;
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) throw badRequest("stop must be a string or an array of strings", "stop");
  if (list.length > MAX_STOPS) throw badRequest(`stop holds at most ${MAX_STOPS} strings`, "stop");
  return list.length > 0 ? list : undefined;
}

function logitBiasOf(f: Fields, nVocab: number): Record<number, number> | undefined {
  const value = f.raw.logit_bias;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) throw badRequest("logit_bias must be an object of token ids to biases", "logit_bias");
  const bias: Record<number, number> = {};
  for (const [key, b] of Object.entries(value)) {
    const token = Number(key);
    if (!/^\d+$/.test(key) || token >= nVocab) throw badRequest(`logit_bias: ${JSON.stringify(key)} is not a token id of this model (0 to ${nVocab - 1})`, "logit_bias");
    if (typeof b !== "number" || !(b >= -100 && b <= 100)) throw badRequest(`logit_bias: the bias of token ${key} must be a number from -100 to 100`, "logit_bias");
    bias[token] = b;
  }
  return bias;
}

function seedOf(f: Fields): number | undefined {
  const seed = f.int("seed");
  if (seed === undefined || seed === -1) return undefined; // -1: random, as llama.cpp's server
  if (seed < 0 || seed > MAX_SEED) throw badRequest(`seed must be from 0 to ${MAX_SEED} (or -1: random)`, "seed");
  return seed;
}

/** `grammar` (llama.cpp's field) or `response_format` as a GBNF grammar. */
function grammarOf(f: Fields): string | undefined {
  const grammar = f.string("grammar");
  const format = f.raw.response_format;
  if (format === undefined || format === null) return grammar;
  if (grammar !== undefined) throw badRequest("use either grammar or response_format", "response_format");
  if (typeof format !== "object" || Array.isArray(format)) throw badRequest("response_format must be an object", "response_format");
  const { type, schema, json_schema: jsonSchema } = format as Record<string, unknown>;
  try {
    if (type === "text") return undefined;
    if (type === "json_object") return schema === undefined ? jsonObjectGrammar() : jsonSchemaGrammar(schema);
    if (type === "json_schema") {
      const inner = typeof jsonSchema === "object" && jsonSchema !== null ? (jsonSchema as Record<string, unknown>).schema : undefined;
      if (inner === undefined) throw badRequest("response_format.json_schema.schema is required", "response_format");
      return jsonSchemaGrammar(inner);
    }
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw badRequest(`response_format: ${(err as Error).message}`, "response_format");
  }
  throw badRequest('response_format.type must be "text", "json_object" or "json_schema"', "response_format");
}

/** max_tokens (or chat's max_completion_tokens), within the server's cap. */
export function maxTokensOf(f: Fields, names: string[], fallback: number, cap: number): number {
  for (const name of names) {
    const value = f.int(name, { min: 1 });
    if (value === undefined) continue;
    if (value > cap) throw badRequest(`${name} is ${value}, but this server allows at most ${cap}`, name);
    return value;
  }
  return Math.min(fallback, cap);
}

/** OpenAI's limits, where they are narrower than llama.cpp's. */
const OPENAI_LIMITS: Partial<Record<SamplingParameterName, { max: number }>> = { temperature: { max: 2 } };

/** The sampling parameters a request field gives as a plain number or string (lib/core/sampling.ts), under their snake_case names. */
const scalarFields = scalarSamplingParameters()
  // The seed takes -1 for random, and a grammar may come as response_format.
  .filter(({ name }) => name !== "seed" && name !== "grammar")
  .map((parameter) => ({ ...parameter, field: parameter.name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) }));

/**
 * llama-server's `lora`: [{ id, scale }] over the adapters loaded at start; adapters not listed get
 * scale 0. Absent: the server's current scales.
 */
function loraOf(f: Fields, adapters: readonly LoraOptions[]): LoraOptions[] {
  const list = f.raw.lora;
  if (list === undefined || list === null) return adapters.map((a) => ({ ...a }));
  if (!Array.isArray(list)) throw badRequest("lora must be an array of { id, scale }", "lora");
  const scales = new Map<number, number>();
  for (const entry of list) {
    const e = entry as { id?: unknown; scale?: unknown } | null;
    if (typeof e !== "object" || e === null || !Number.isInteger(e.id) || (e.id as number) < 0 || (e.id as number) >= adapters.length) {
      throw badRequest(`lora: each entry needs an id of an adapter loaded at start (0 to ${adapters.length - 1})`, "lora");
    }
    if (typeof e.scale !== "number" || !Number.isFinite(e.scale)) throw badRequest("lora: each entry needs a numeric scale", "lora");
    scales.set(e.id as number, e.scale);
  }
  return adapters.map((a, id) => ({ path: a.path, scale: scales.get(id) ?? 0 }));
}

/**
 * llama-server's n_keep: the prompt tokens a context shift keeps after the BOS (-1: all), where the
 * server shifts; without --context-shift it has no effect, as there. A shift always discards half:
 * llama-server's n_discard is not supported.
 */
function contextShiftOf(f: Fields, limits: RequestLimits): SamplingOptions["contextShift"] {
  if (f.int("n_discard", { min: 0 })) throw badRequest("n_discard is not supported: a context shift discards half of the tokens after n_keep", "n_discard", "unsupported");
  const keep = f.int("n_keep", { min: -1 });
  return keep !== undefined && limits.contextShift ? { keep } : undefined;
}

export function samplingOf(f: Fields, limits: RequestLimits): SamplingOptions {
  const options: Record<string, unknown> = {};
  for (const { name, field, scalar, min, max } of scalarFields) {
    const bounds = { min, max: OPENAI_LIMITS[name]?.max ?? max };
    options[name] = scalar === "string" ? f.string(field) : scalar === "integer" ? f.int(field, bounds) : f.number(field, bounds);
  }
  const mirostat = f.int("mirostat", { min: 0, max: 2 });
  Object.assign(options, {
    mirostat: mirostat ? { mode: mirostat as 1 | 2, tau: f.number("mirostat_tau", { min: 0 }), eta: f.number("mirostat_eta", { min: 0 }) } : undefined,
    seed: seedOf(f),
    stop: stopOf(f),
    logitBias: logitBiasOf(f, limits.nVocab),
    grammar: grammarOf(f),
    lora: loraOf(f, limits.adapters),
    contextShift: contextShiftOf(f, limits),
  });
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as SamplingOptions;
}

export interface CompletionRequest {
  prompt: string | number[];
  options: CompletionOptions;
  stream: boolean;
}

function promptOf(value: unknown, nVocab: number): string | number[] {
  const isTokens = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((t) => Number.isInteger(t));
  let prompt: unknown = value;
  if (Array.isArray(value) && !isTokens(value)) {
    if (value.length !== 1) throw badRequest("prompt: this server takes one prompt per request", "prompt", "unsupported");
    prompt = value[0];
  }
  if (typeof prompt === "string") return prompt;
  if (isTokens(prompt)) {
    const outside = prompt.find((t) => t < 0 || t >= nVocab);
    if (outside !== undefined) throw badRequest(`prompt: token ${outside} is not in the vocabulary (0 to ${nVocab - 1})`, "prompt");
    return prompt;
  }
  throw badRequest("prompt must be a string or an array of token ids", "prompt");
}

export function completionRequest(body: unknown, limits: RequestLimits): CompletionRequest {
  const f = new Fields(body);
  if (!f.present("prompt")) throw badRequest("prompt is required", "prompt", "missing_required_parameter");
  f.onlyOne("n");
  f.onlyOne("best_of");
  const options: CompletionOptions = {
    ...samplingOf(f, limits),
    maxTokens: maxTokensOf(f, ["max_tokens"], 16, limits.maxTokensCap),
  };
  const logprobs = f.int("logprobs", { min: 0, max: 20 });
  if (logprobs !== undefined) options.logprobs = logprobs;
  if (f.bool("echo")) options.echo = true;
  const suffix = f.string("suffix");
  if (suffix !== undefined) options.suffix = suffix;
  const streamOptions = streamOptionsOf(f);
  if (streamOptions) options.streamOptions = streamOptions;
  const multimodal = multimodalPromptOf(f.raw.prompt);
  if (multimodal !== undefined) options.media = multimodal.media;
  return { prompt: multimodal?.prompt ?? promptOf(f.raw.prompt, limits.nVocab), options, stream: f.bool("stream") ?? false };
}

/** llama-server's prompt with media: { prompt_string, multimodal_data: base64 files, one per <__media__> }. */
function multimodalPromptOf(value: unknown): { prompt: string; media: Buffer[] } | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { prompt_string: prompt, multimodal_data: data } = value as Record<string, unknown>;
  if (typeof prompt !== "string") throw badRequest("prompt.prompt_string must be a string", "prompt");
  if (data !== undefined && (!Array.isArray(data) || !data.every((item) => typeof item === "string"))) {
    throw badRequest("prompt.multimodal_data must be an array of base64 strings", "prompt");
  }
  return { prompt, media: (data ?? []).map((item: string) => Buffer.from(item, "base64")) };
}

export interface ChatRequest {
  options: ChatCompletionOptions;
  stream: boolean;
}

/** Message content: a string, or OpenAI's array of parts: text parts joined, or, with images or audio, the parts as they are. */
function contentOf(value: unknown, param: string): ChatMessage["content"] {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    // The Llama checks media parts and names a bad one.
    if (value.some((p) => ["image_url", "input_audio"].includes((p as { type?: unknown } | null)?.type as string))) return value as ChatContentPart[];
    return value
      .map((part, i) => {
        const p = part as { type?: unknown; text?: unknown } | null;
        if (p?.type !== "text" || typeof p.text !== "string") throw badRequest(`${param}[${i}]: only text content parts are supported`, param, "unsupported");
        return p.text;
      })
      .join("");
  }
  throw badRequest(`${param} must be a string or an array of content parts`, param);
}

function messagesOf(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw badRequest("messages must be a non-empty array", "messages");
  return value.map((m, i) => {
    const param = `messages[${i}]`;
    if (typeof m !== "object" || m === null) throw badRequest(`${param} must be an object`, param);
    const { role, content, name, tool_calls: toolCalls, tool_call_id: toolCallId, reasoning_content: reasoning } = m as Record<string, unknown>;
    if (typeof role !== "string" || role === "") throw badRequest(`${param}.role must be a string`, `${param}.role`);
    // OpenAI's newer name for the system role, which chat templates do not know.
    const message: ChatMessage = { role: role === "developer" ? "system" : role, content: contentOf(content, `${param}.content`) };
    // The rest is checked where every caller's messages are (lib/completion/chat-messages.ts).
    if (name !== undefined && name !== null) message.name = name as string;
    if (toolCalls !== undefined && toolCalls !== null) message.tool_calls = toolCalls as ChatMessage["tool_calls"];
    if (toolCallId !== undefined && toolCallId !== null) message.tool_call_id = toolCallId as string;
    if (reasoning !== undefined && reasoning !== null) message.reasoning_content = reasoning as string;
    return message;
  });
}

/** The tool fields: tools, tool_choice, parallel_tool_calls (OpenAI's), and the template's. */
function toolOptionsOf(f: Fields): Partial<ChatCompletionOptions> {
  const options: Partial<ChatCompletionOptions> = {};
  if (f.raw.tools !== undefined && f.raw.tools !== null) {
    if (!Array.isArray(f.raw.tools)) throw badRequest("tools must be an array", "tools");
    if (f.raw.tools.length > 0) options.tools = f.raw.tools as ChatCompletionOptions["tools"];
  }
  if (f.raw.tool_choice !== undefined && f.raw.tool_choice !== null) options.toolChoice = f.raw.tool_choice as ChatCompletionOptions["toolChoice"];
  const parallel = f.bool("parallel_tool_calls");
  if (parallel !== undefined) options.parallelToolCalls = parallel;
  const kwargs = f.raw.chat_template_kwargs;
  if (kwargs !== undefined && kwargs !== null) {
    if (typeof kwargs !== "object" || Array.isArray(kwargs)) throw badRequest("chat_template_kwargs must be an object", "chat_template_kwargs");
    options.chatTemplateKwargs = kwargs as Record<string, unknown>;
  }
  const reasoning = f.string("reasoning_format");
  if (reasoning !== undefined) {
    if (!(REASONING_FORMATS as readonly string[]).includes(reasoning)) {
      throw badRequest(`reasoning_format must be one of ${REASONING_FORMATS.join(", ")}`, "reasoning_format");
    }
    options.reasoningFormat = reasoning as ChatCompletionOptions["reasoningFormat"];
  }
  const streamOptions = streamOptionsOf(f);
  if (streamOptions) options.streamOptions = streamOptions;
  return options;
}

function streamOptionsOf(f: Fields): { includeUsage: true } | undefined {
  const streamOptions = f.raw.stream_options;
  if (streamOptions === undefined || streamOptions === null) return undefined;
  if (typeof streamOptions !== "object" || Array.isArray(streamOptions)) throw badRequest("stream_options must be an object", "stream_options");
  const include = (streamOptions as Record<string, unknown>).include_usage;
  if (include !== undefined && typeof include !== "boolean") throw badRequest("stream_options.include_usage must be a boolean", "stream_options");
  return include ? { includeUsage: true } : undefined;
}

export function chatRequest(body: unknown, limits: RequestLimits): ChatRequest {
  const f = new Fields(body);
  f.onlyOne("n");
  if (Array.isArray(f.raw.functions) && f.raw.functions.length > 0) throw badRequest("functions are deprecated: send tools", "functions", "unsupported");
  const options: ChatCompletionOptions = {
    ...samplingOf(f, limits),
    ...toolOptionsOf(f),
    messages: messagesOf(f.raw.messages),
    maxTokens: maxTokensOf(f, ["max_completion_tokens", "max_tokens"], limits.maxTokensCap, limits.maxTokensCap),
  };
  // With tools, the template's grammar takes the response format in (as its schema).
  if (options.tools !== undefined && f.raw.response_format !== undefined && f.raw.response_format !== null) {
    delete options.grammar;
    options.responseFormat = f.raw.response_format as ChatCompletionOptions["responseFormat"];
  }
  const logprobs = f.bool("logprobs");
  const top = f.int("top_logprobs", { min: 0, max: 20 });
  if (top !== undefined && !logprobs) throw badRequest("top_logprobs needs logprobs: true", "top_logprobs");
  if (logprobs) options.logprobs = true;
  if (top !== undefined) options.topLogprobs = top;
  return { options, stream: f.bool("stream") ?? false };
}

export interface EmbeddingRequest {
  input: string[];
  encoding: "float" | "base64";
}

export function embeddingRequest(body: unknown): EmbeddingRequest {
  const f = new Fields(body);
  const value = f.raw.input;
  const input = typeof value === "string" ? [value] : value;
  if (!Array.isArray(input) || input.length === 0 || !input.every((s) => typeof s === "string")) {
    throw badRequest("input must be a string or a non-empty array of strings (token arrays are not supported)", "input");
  }
  if (input.some((s) => s === "")) throw badRequest("input must not contain empty strings", "input");
  const encoding = f.string("encoding_format") ?? "float";
  if (encoding !== "float" && encoding !== "base64") throw badRequest('encoding_format must be "float" or "base64"', "encoding_format");
  return { input, encoding };
}
