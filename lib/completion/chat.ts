// Chat prompts. By default the model's Jinja template (or the chatTemplate option's) is rendered by
// llama.cpp's chat library, as llama-server does: with tools, the reply's grammar, its triggers
// and its parser come with the prompt. A built-in template name, or `jinja: false`, takes
// llama.cpp's older formatter, which knows templates by name and offers no tools.
import { applyChatTemplate, builtinChatTemplates } from "../core/chat-template.js";
import { JinjaTemplates, ReplyParser, type ReasoningFormat, type RenderedChat } from "../core/jinja-templates.js";
import type { LoadedModel } from "../core/loaded-model.js";
import type { SamplerOptions } from "../core/sampling.js";
import { LlamaError } from "../errors.js";
import { checkMessages, checkTools, resolveToolChoice } from "./chat-messages.js";
import { jsonObjectGrammar, jsonSchemaGrammar } from "./json-grammar.js";
import type { ResponseFormat } from "./options.js";
import type { ChatMessage, ChatTool, ChatToolChoice } from "./types.js";

/** What a chat request gives the formatter. */
export interface ChatInputs {
  messages: readonly ChatMessage[];
  tools?: ChatTool[];
  toolChoice?: ChatToolChoice;
  parallelToolCalls?: boolean;
  responseFormat?: ResponseFormat;
  chatTemplateKwargs?: Record<string, unknown>;
  reasoningFormat?: ReasoningFormat;
  /** The request's own grammar (which tools cannot take). */
  grammar?: string;
}

/** A chat ready to generate: its prompt, stops, the sampling it sets and how to read the reply. */
export interface PreparedChat {
  tokens: Int32Array;
  /** The rendered prompt, and whether its tokens start with the BOS added (a prompt with media is tokenized from it). */
  text: string;
  addSpecial: boolean;
  stops: string[];
  /** The grammar of the tools or of the response format. */
  sampling: Pick<SamplerOptions, "grammar" | "grammarTriggers" | "grammarPrefill" | "reasoningTags">;
  /** Special tokens that the reply shows as text (tool call markers). */
  specialTokens: Set<number> | undefined;
  /** The reply's parser; undefined: the reply is plain content. */
  parser: ReplyParser | undefined;
  /** tool_choice "none": calls the parser finds are left out. */
  dropToolCalls: boolean;
}

const PROBE = "@@end-of-turn-probe@@";

export class ChatFormatter {
  readonly #model: LoadedModel;
  readonly #template: string | undefined;
  readonly #builtin: boolean;
  #jinja: JinjaTemplates | undefined;
  #endOfTurn: string[] | undefined;
  #fallbackNoted = false;

  /**
   * `template`: the chatTemplate option (a Jinja template, or a built-in name), else the model's.
   * `jinja: false` formats with llama.cpp's built-in formatter. An override that does not parse is
   * CHAT_TEMPLATE here; the model's own template fails on first use, so that completions still work.
   */
  constructor(model: LoadedModel, options: { template?: string; jinja?: boolean } = {}) {
    this.#model = model;
    this.#template = options.template;
    this.#builtin = options.jinja === false || (options.template !== undefined && builtinChatTemplates().includes(options.template));
    if (!this.#builtin && options.template !== undefined) this.#templates();
  }

  #templates(): JinjaTemplates {
    if (this.#jinja === undefined) {
      if (this.#template === undefined && this.#model.chatTemplate() === null) this.#noteFallback();
      this.#jinja = new JinjaTemplates(this.#model, this.#template);
    }
    return this.#jinja;
  }

  #noteFallback(): void {
    if (this.#fallbackNoted) return;
    this.#fallbackNoted = true;
    console.warn(`llama-napi: ${this.#model.path} has no chat template; using ChatML`);
  }

  /** The chat prompt, and the texts that close an assistant turn (stop strings). */
  format(inputs: ChatInputs): { prompt: string; stops: string[] } {
    const { choice, offered } = this.#checked(inputs);
    if (this.#builtin) return this.#formatBuiltin(inputs.messages);
    const rendered = this.#render({ ...inputs, tools: offered, toolChoice: choice });
    return { prompt: rendered.prompt, stops: [...rendered.additionalStops, ...this.#jinjaEndOfTurn()] };
  }

  /** The checked messages' tools to offer and the tool choice; the built-in formatter takes none. */
  #checked(inputs: ChatInputs): { choice: "auto" | "none" | "required"; offered: ChatTool[] } {
    checkMessages(inputs.messages);
    const { choice, tools: offered } = resolveToolChoice(inputs.toolChoice, inputs.tools === undefined ? [] : checkTools(inputs.tools));
    if (this.#builtin && offered.length > 0) {
      throw new LlamaError("INVALID_ARGUMENT", "tools need a Jinja chat template (this Llama formats chats by a built-in name)");
    }
    return { choice, offered };
  }

  /** Everything a chat completion needs before it generates (CONTEXT_FULL when the prompt does not fit `nCtx`). */
  prepare(inputs: ChatInputs, nCtx: number): PreparedChat {
    const { choice, offered } = this.#checked(inputs);
    const toolsActive = offered.length > 0 && choice !== "none";
    if (this.#builtin) {
      const { prompt, stops } = this.#formatBuiltin(inputs.messages);
      const grammar = inputs.grammar ?? responseFormatGrammar(inputs.responseFormat);
      return { ...this.#tokens(prompt, nCtx), stops, sampling: { grammar }, specialTokens: undefined, parser: undefined, dropToolCalls: false };
    }
    if (toolsActive && inputs.grammar !== undefined) throw new LlamaError("INVALID_ARGUMENT", "a grammar cannot be combined with tools");
    const schema = toolsActive ? responseFormatSchema(inputs.responseFormat) : undefined;
    const rendered = this.#render({ ...inputs, tools: offered, toolChoice: choice, jsonSchema: schema });
    const sampling: PreparedChat["sampling"] = {};
    if (rendered.grammar !== "" && (!rendered.grammarLazy || rendered.grammarTriggers.length > 0)) {
      sampling.grammar = adjustGrammar(rendered.grammar, { required: choice === "required", parallel: inputs.parallelToolCalls ?? false });
      if (rendered.grammarLazy) sampling.grammarTriggers = rendered.grammarTriggers;
      else sampling.grammarPrefill = rendered.generationPrompt;
    } else if (!toolsActive) {
      sampling.grammar = inputs.grammar ?? responseFormatGrammar(inputs.responseFormat);
    }
    if (rendered.thinkingStartTag !== "" && rendered.thinkingEndTags.length > 0) {
      sampling.reasoningTags = { start: rendered.thinkingStartTag, end: rendered.thinkingEndTags, prefill: rendered.generationPrompt };
    }
    return {
      ...this.#tokens(rendered.prompt, nCtx),
      stops: [...rendered.additionalStops, ...this.#jinjaEndOfTurn()],
      sampling,
      specialTokens: this.#singleTokens(rendered.preservedTokens),
      parser: new ReplyParser(rendered),
      dropToolCalls: choice === "none",
    };
  }

  #render(inputs: ChatInputs & { jsonSchema?: string }): RenderedChat {
    const templates = this.#templates();
    const kwargs = inputs.chatTemplateKwargs;
    const enableThinking = kwargs?.enable_thinking;
    if (enableThinking !== undefined && typeof enableThinking !== "boolean") {
      throw new LlamaError("INVALID_ARGUMENT", "chatTemplateKwargs.enable_thinking must be a boolean");
    }
    return templates.apply({
      messages: [...inputs.messages],
      tools: inputs.tools && inputs.tools.length > 0 ? inputs.tools : undefined,
      toolChoice: (inputs.toolChoice as "auto" | "none" | "required" | undefined) ?? "auto",
      parallelToolCalls: inputs.parallelToolCalls ?? false,
      jsonSchema: inputs.jsonSchema,
      addGenerationPrompt: true,
      reasoningFormat: inputs.reasoningFormat ?? "auto",
      enableThinking: enableThinking ?? templates.supportsThinking(),
      kwargs,
    });
  }

  /** The text after an assistant message, which ends a turn where no end-of-generation token does. */
  #jinjaEndOfTurn(): string[] {
    if (this.#endOfTurn === undefined) {
      this.#endOfTurn = [];
      try {
        const { prompt } = this.#templates().apply({
          messages: [
            { role: "user", content: "x" },
            { role: "assistant", content: PROBE },
          ],
          toolChoice: "auto",
          parallelToolCalls: false,
          addGenerationPrompt: false,
          reasoningFormat: "none",
          enableThinking: false,
        });
        const end = prompt.slice(prompt.indexOf(PROBE) + PROBE.length).trim();
        if (prompt.includes(PROBE) && end !== "") this.#endOfTurn = [end];
      } catch {
        // A template that cannot render this probe leaves the end of turn to end-of-generation tokens.
      }
    }
    return this.#endOfTurn;
  }

  #formatBuiltin(messages: readonly ChatMessage[]): { prompt: string; stops: string[] } {
    const roles = messages.map((m) => m.role);
    const contents = messages.map((m) => textOf(m.content));
    let template = this.#template ?? this.#model.chatTemplate();
    if (template === null) {
      this.#noteFallback();
      template = "chatml";
    }
    const prompt = applyChatTemplate(template, roles, contents, true);
    if (prompt === null) {
      throw new LlamaError("UNSUPPORTED", `llama.cpp does not know this chat template; pass chatTemplate with one of: ${builtinChatTemplates().join(", ")}`);
    }
    // The text that closes an assistant turn: what the template writes after an assistant message.
    const marker = "\u0001";
    const closed = applyChatTemplate(template, ["user", "assistant"], ["x", marker], false) ?? "";
    const after = closed.slice(closed.indexOf(marker) + 1);
    const opened = applyChatTemplate(template, ["user", "assistant", "user"], ["x", marker, "y"], false) ?? "";
    const between = opened.slice(opened.indexOf(marker) + 1);
    const endOfTurn = (after.length > 0 ? after : between.slice(0, Math.max(0, between.indexOf("y")))).trim();
    return { prompt, stops: endOfTurn ? [endOfTurn] : [] };
  }

  /** The chat prompt's tokens, or CONTEXT_FULL. */
  #tokens(prompt: string, nCtx: number): Pick<PreparedChat, "tokens" | "text" | "addSpecial"> {
    const model = this.#model;
    const bosText = model.info.bos >= 0 ? model.detokenize([model.info.bos], { unparseSpecial: true }) : "";
    // Templates that write the BOS text themselves must not get a second BOS.
    const addSpecial = !(bosText !== "" && prompt.startsWith(bosText));
    const tokens = model.tokenize(prompt, { addSpecial, parseSpecial: true });
    if (tokens.length > nCtx) {
      throw new LlamaError("CONTEXT_FULL", `the chat prompt has ${tokens.length} tokens but the context holds ${nCtx}`);
    }
    return { tokens, text: prompt, addSpecial };
  }

  /** The ids of the texts that are one token each (llama-server preserves those). */
  #singleTokens(texts: string[]): Set<number> | undefined {
    const ids = new Set<number>();
    for (const text of texts) {
      const tokens = this.#model.tokenize(text, { addSpecial: false, parseSpecial: true });
      if (tokens.length === 1) ids.add(tokens[0]!);
    }
    return ids.size > 0 ? ids : undefined;
  }
}

/**
 * Two of llama.cpp's tool grammars allow more than the request does, which a capable model never
 * uses but a weak one can, writing until it runs out of tokens:
 * - for tool_choice "required", free text may come before the calls (a capable model may explain
 *   first); required here means the reply is its calls (after any reasoning), so the optional
 *   text before them leaves the root rule;
 * - templates whose calls are each wrapped (Hermes' <tool_call>) take any number of calls even
 *   without parallel_tool_calls; without it, here they take one.
 */
function adjustGrammar(grammar: string, request: { required: boolean; parallel: boolean }): string {
  let adjusted = grammar;
  if (request.required) adjusted = adjusted.replace(/^(root ::= .*?)\s+until-\d+\?(\s+tool-calls?\b)/m, "$1$2");
  if (!request.parallel) adjusted = adjusted.replace(/^tool-calls ::= \(tool-call space\)\+$/m, "tool-calls ::= tool-call space");
  return adjusted;
}

/** A message's text, its parts joined as llama.cpp's common/chat joins them: a newline between texts, none around a media marker. */
function textOf(content: ChatMessage["content"]): string {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  let text = "";
  let afterMarker = false;
  for (const part of content) {
    const marker = (part.type as string) === "media_marker";
    if (!marker && !afterMarker && text !== "") text += "\n";
    text += "text" in part ? part.text : "";
    afterMarker = marker;
  }
  return text;
}

/** The GBNF grammar of a JSON response format; undefined for text. */
export function responseFormatGrammar(format: ResponseFormat | undefined): string | undefined {
  if (format === undefined || format.type === "text") return undefined;
  if (format.type === "json_object") return format.schema ? jsonSchemaGrammar(format.schema) : jsonObjectGrammar();
  return jsonSchemaGrammar(format.json_schema.schema);
}

/** A JSON response format's schema as text, for llama.cpp's chat library; undefined for text. */
function responseFormatSchema(format: ResponseFormat | undefined): string | undefined {
  if (format === undefined || format.type === "text") return undefined;
  if (format.type === "json_object") return JSON.stringify(format.schema ?? { type: "object" });
  return JSON.stringify(format.json_schema.schema);
}
