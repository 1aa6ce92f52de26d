// OpenAI / llama-cpp-python response shapes.

export type FinishReason = "stop" | "length";

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
}

export type ChatRole = "system" | "user" | "assistant" | "tool" | (string & {});

export interface ChatMessage {
  role: ChatRole;
  content: string | null;
  name?: string;
}

export interface ChatCompletionChoice {
  index: number;
  message: { role: "assistant"; content: string };
  logprobs: ChatLogprobs | null;
  finish_reason: FinishReason;
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
    delta: { role?: "assistant"; content?: string };
    logprobs: ChatLogprobs | null;
    finish_reason: FinishReason | null;
  }>;
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
