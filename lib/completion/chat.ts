// Chat prompts: messages formatted by the model's chat template (or the chatTemplate option) with
// llama.cpp's template formatter, the text that ends the assistant's turn, and the grammar of a
// JSON response format.
import { applyChatTemplate, builtinChatTemplates } from "../core/chat-template.js";
import type { LoadedModel } from "../core/loaded-model.js";
import { LlamaError } from "../errors.js";
import { expectObject, expectString } from "../validate.js";
import { jsonObjectGrammar, jsonSchemaGrammar } from "./json-grammar.js";
import type { ResponseFormat } from "./options.js";
import type { ChatMessage } from "./types.js";

export class ChatFormatter {
  readonly #model: LoadedModel;
  readonly #template: string | undefined;
  #fallbackNoted = false;

  /** `template`: the chatTemplate option (a built-in name or a template), else the model's. */
  constructor(model: LoadedModel, template: string | undefined) {
    this.#model = model;
    this.#template = template;
  }

  /** The chat prompt, and the text that closes an assistant turn (a stop string). */
  format(messages: readonly ChatMessage[]): { prompt: string; stops: string[] } {
    if (!Array.isArray(messages) || messages.length === 0) throw new TypeError("messages must be a non-empty array");
    const roles: string[] = [];
    const contents: string[] = [];
    messages.forEach((m, i) => {
      expectObject(`messages[${i}]`, m);
      roles.push(expectString(`messages[${i}].role`, m.role));
      if (m.content !== null && typeof m.content !== "string") throw new TypeError(`messages[${i}].content must be a string or null`);
      contents.push(m.content ?? "");
    });
    let template = this.#template ?? this.#model.chatTemplate();
    if (template === null) {
      if (!this.#fallbackNoted) {
        this.#fallbackNoted = true;
        console.warn(`llama-napi: ${this.#model.path} has no chat template; using ChatML`);
      }
      template = "chatml";
    }
    const prompt = applyChatTemplate(template, roles, contents, true);
    if (prompt === null) {
      throw new LlamaError(
        "UNSUPPORTED",
        `llama.cpp does not know this chat template; pass chatTemplate with one of: ${builtinChatTemplates().join(", ")}`,
      );
    }
    // The text that closes an assistant turn: what the template writes after an assistant message.
    const marker = "\u0001";
    const closed = applyChatTemplate(template, ["user", "assistant"], ["x", marker], false) ?? "";
    const after = closed.slice(closed.indexOf(marker) + 1);
    const opened = applyChatTemplate(template, ["user", "assistant", "user"], ["x", marker, "y"], false) ?? "";
    const between = opened.slice(opened.indexOf(marker) + 1);
    const common = after.length > 0 ? after : between.slice(0, Math.max(0, between.indexOf("y")));
    const endOfTurn = common.trim();
    return { prompt, stops: endOfTurn ? [endOfTurn] : [] };
  }

  /** The chat prompt's tokens (CONTEXT_FULL when they do not fit `nCtx`) and its stop strings. */
  promptTokens(messages: readonly ChatMessage[], nCtx: number): { tokens: Int32Array; stops: string[] } {
    const { prompt, stops } = this.format(messages);
    const model = this.#model;
    const bosText = model.info.bos >= 0 ? model.detokenize([model.info.bos], { unparseSpecial: true }) : "";
    // Templates that write the BOS text themselves must not get a second BOS.
    const addSpecial = !(bosText !== "" && prompt.startsWith(bosText));
    const tokens = model.tokenize(prompt, { addSpecial, parseSpecial: true });
    if (tokens.length > nCtx) {
      throw new LlamaError("CONTEXT_FULL", `the chat prompt has ${tokens.length} tokens but the context holds ${nCtx}`);
    }
    return { tokens, stops };
  }
}

/** The GBNF grammar of a JSON response format; undefined for text. */
export function responseFormatGrammar(format: ResponseFormat | undefined): string | undefined {
  if (format === undefined || format.type === "text") return undefined;
  if (format.type === "json_object") return format.schema ? jsonSchemaGrammar(format.schema) : jsonObjectGrammar();
  return jsonSchemaGrammar(format.json_schema.schema);
}
