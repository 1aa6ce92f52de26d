// Chat templates by llama.cpp's Jinja engine and chat library (common/chat), as llama-server uses
// them: the prompt of a conversation with tools, the grammar, triggers and stops that go with it,
// and the parser that turns the reply back into content, reasoning and tool calls.
import { callNative } from "./abort.js";
import { native } from "./binding.js";
import type { LoadedModel } from "./loaded-model.js";
import type { NativeChatParser, NativeChatTemplates } from "./native.js";
import type { GrammarTrigger } from "./sampling.js";

/** How a reasoning model's thinking comes back, as llama-server's --reasoning-format. */
export const REASONING_FORMATS = ["none", "auto", "deepseek", "deepseek-legacy"] as const;
export type ReasoningFormat = (typeof REASONING_FORMATS)[number];

/** What the template renders: OpenAI-shaped messages and tools, already checked. */
export interface TemplateInputs {
  messages: unknown[];
  tools?: unknown[];
  toolChoice: "auto" | "none" | "required";
  parallelToolCalls: boolean;
  /** A JSON schema (as text) the reply must follow. */
  jsonSchema?: string;
  addGenerationPrompt: boolean;
  reasoningFormat: ReasoningFormat;
  enableThinking: boolean;
  /** Extra template variables. */
  kwargs?: Record<string, unknown>;
  /** The time templates print (ms since the epoch); default now. */
  now?: number;
}

/** A rendered chat: common_chat_params. */
export interface RenderedChat {
  prompt: string;
  format: number;
  formatName: string;
  /** GBNF of the reply ("" when free). */
  grammar: string;
  grammarLazy: boolean;
  grammarTriggers: GrammarTrigger[];
  /** Special tokens the reply's parser must see as text (tool call markers). */
  preservedTokens: string[];
  additionalStops: string[];
  /** The end of the prompt that the parser and a non-lazy grammar start from. */
  generationPrompt: string;
  /** The reply's parser, serialized. */
  parser: string;
  supportsThinking: boolean;
  thinkingStartTag: string;
  thinkingEndTags: string[];
}

/** A tool call as OpenAI shapes it. */
export interface ParsedToolCall {
  id?: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A reply parsed: OpenAI's assistant message. */
export interface ParsedMessage {
  role: string;
  content: string;
  reasoning_content?: string;
  tool_calls?: ParsedToolCall[];
}

/** What changed in the reply since the last update. */
export interface ReplyDiff {
  reasoningContent?: string;
  content?: string;
  /** A tool call's first fragment has its id and name; later ones only more arguments. */
  toolCall?: { index: number; id: string; name: string; arguments: string };
}

export interface ReplyUpdate {
  /** False when the text does not parse (a partial reply may parse once more comes). */
  ok: boolean;
  error?: string;
  message: ParsedMessage;
  diffs: ReplyDiff[];
}

/** A model's Jinja chat templates (or an override). */
export class JinjaTemplates {
  readonly #native: NativeChatTemplates;
  #supportsThinking: boolean | undefined;

  /**
   * `override`: a Jinja source to use instead of the model's, named `overrideName` in errors.
   * A template that does not parse is CHAT_TEMPLATE.
   */
  constructor(model: LoadedModel, override?: string, overrideName = "the chatTemplate option") {
    const name = override === undefined ? `the chat template of ${model.path}` : overrideName;
    this.#native = callNative(() => new native.ChatTemplates(model.native, override ?? "", name));
  }

  /** Renders a conversation: CHAT_TEMPLATE when the template fails, INVALID_ARGUMENT for messages llama.cpp rejects. */
  apply(inputs: TemplateInputs): RenderedChat {
    return JSON.parse(callNative(() => this.#native.apply(JSON.stringify(inputs)))) as RenderedChat;
  }

  /** The Jinja source in use. */
  source(): string {
    return this.#native.source();
  }

  /** Whether the template reads `enable_thinking` (llama.cpp renders a probe to find out: asked once). */
  supportsThinking(): boolean {
    this.#supportsThinking ??= this.#native.supportsThinking();
    return this.#supportsThinking;
  }
}

/** Parses one reply as it grows (llama.cpp's common_chat_parse), with stable tool call ids. */
export class ReplyParser {
  readonly #native: NativeChatParser;

  constructor(rendered: RenderedChat) {
    const params = { format: rendered.format, generationPrompt: rendered.generationPrompt, parser: rendered.parser };
    this.#native = callNative(() => new native.ChatParser(JSON.stringify(params)));
  }

  /** Adds `delta` to the reply and parses it; `final` once the reply is complete. */
  update(delta: string, final: boolean): ReplyUpdate {
    return JSON.parse(callNative(() => this.#native.update(delta, final))) as ReplyUpdate;
  }
}
