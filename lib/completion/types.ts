// OpenAI / llama-cpp-python response shapes.

export type FinishReason = "stop" | "length";

/** Why a chat reply ended: as a completion's, or "tool_calls" when it calls tools. */
export type ChatFinishReason = FinishReason | "tool_calls";

export interface CompletionLogprobs {
  tokens: string[];
  text_offset: number[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
}

export interface CompletionChoice {
  text: string;
  index: number;
  logprobs: CompletionLogprobs | null;
  finish_reason: FinishReason;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** With speculative decoding (Llama.load's draft): tokens drafted, and how many of them were taken. */
  draft_tokens?: number;
  draft_accepted?: number;
}

export interface Completion {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: CompletionChoice[];
  usage: CompletionUsage;
}

export interface CompletionChunk {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: Array<{ text: string; index: number; logprobs: CompletionLogprobs | null; finish_reason: FinishReason | null }>;
  /** With streamOptions.includeUsage: null on every chunk but the last, which has no choices. */
  usage?: CompletionUsage | null;
}

export type ChatRole = "system" | "user" | "assistant" | "tool" | (string & {});

/** A part of a message's content: text, an image (a data:, file:// or http(s) URL), or audio (base64). */
export type ChatContentPart =
  | { type: "text"; text: string }
  | { type: "image_url"; image_url: { url: string; detail?: string } }
  | { type: "input_audio"; input_audio: { data: string; format: "wav" | "mp3" | "flac" } };

/** A call of a function tool, in a reply or in an assistant message of the history. */
export interface ChatToolCall {
  id: string;
  type: "function";
  /** `arguments`: the arguments as JSON text. */
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: ChatRole;
  content: string | ChatContentPart[] | null;
  name?: string;
  /** An assistant message's tool calls. */
  tool_calls?: ChatToolCall[];
  /** A tool message: the id of the call it answers. */
  tool_call_id?: string;
  /** An assistant message's reasoning (templates that show earlier thinking render it). */
  reasoning_content?: string;
}

/** A function the model may call: OpenAI's tool shape. `parameters`: a JSON schema of the arguments. */
export interface ChatTool {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

/** Whether the model may, must or must not call a tool, or must call this one. */
export type ChatToolChoice = "auto" | "none" | "required" | { type: "function"; function: { name: string } };

/** The assistant's reply. */
export interface ChatCompletionMessage {
  role: "assistant";
  /** The text; null when the reply is only tool calls. */
  content: string | null;
  /** A reasoning model's thinking, apart from the answer (see reasoningFormat). */
  reasoning_content?: string;
  tool_calls?: ChatToolCall[];
}

export interface ChatCompletionChoice {
  index: number;
  message: ChatCompletionMessage;
  logprobs: ChatLogprobs | null;
  finish_reason: ChatFinishReason;
}

export interface ChatLogprobs {
  content: Array<{ token: string; logprob: number; bytes: number[]; top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }> }>;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: ChatCompletionChoice[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: ChatCompletionDelta;
    logprobs: ChatLogprobs | null;
    finish_reason: ChatFinishReason | null;
  }>;
  /** With streamOptions.includeUsage: null on every chunk but the last, which has no choices. */
  usage?: CompletionUsage | null;
}

/** A streamed tool call's fragment: index, id and name come in its first; arguments grow after. */
export interface ChatToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionDelta {
  role?: "assistant";
  content?: string | null;
  reasoning_content?: string;
  tool_calls?: ChatToolCallDelta[];
}

export interface Embedding {
  object: "embedding";
  embedding: number[];
  index: number;
}

export interface EmbeddingList {
  object: "list";
  data: Embedding[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

/** One document's score (the model's rank head, llama-server's relevance_score); `index` is its place in the request. */
export interface RerankResult {
  index: number;
  relevance_score: number;
}

/** llama-server's /rerank response: results best first; usage counts every document's prompt. */
export interface RerankList {
  model: string;
  object: "list";
  usage: { prompt_tokens: number; total_tokens: number };
  results: RerankResult[];
}
