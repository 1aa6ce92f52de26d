// A chat reply read through its template's parser: the whole message (content, reasoning, tool
// calls) and, streamed, one OpenAI delta per chunk of text, tool call arguments in fragments whose
// concatenation is the whole call's.
import type { ParsedMessage, ReplyDiff, ReplyParser } from "../core/jinja-templates.js";
import type { ChatCompletionDelta, ChatCompletionMessage, ChatFinishReason, ChatToolCallDelta, FinishReason } from "./types.js";

export class ChatReply {
  readonly #parser: ReplyParser | undefined;
  readonly #dropToolCalls: boolean;
  /** The most calls a reply may make (1 without parallelToolCalls). */
  readonly #maxCalls: number;
  /** The tool calls whose first fragment went out. */
  readonly #announced = new Set<number>();
  #text = "";
  #emitted = false;
  #toolCalls = 0;

  /**
   * `parser` undefined: the reply is plain content. `dropToolCalls`: tool_choice "none".
   * `parallelToolCalls` false: calls after the first are left out (some templates' grammars allow
   * more whatever the request says).
   */
  constructor(parser: ReplyParser | undefined, options: { dropToolCalls: boolean; parallelToolCalls: boolean }) {
    this.#parser = parser;
    this.#dropToolCalls = options.dropToolCalls;
    this.#maxCalls = options.parallelToolCalls ? Infinity : 1;
  }

  /** The delta of the next chunk of text; undefined while it shows nothing new yet. */
  delta(text: string): ChatCompletionDelta | undefined {
    this.#text += text;
    if (this.#parser === undefined) return text === "" ? undefined : this.#emit({ content: text });
    const update = this.#parser.update(text, false);
    return update.ok ? this.#merge(update.diffs) : undefined;
  }

  /** What is left once the reply is complete. Text that does not parse comes out as content. */
  finish(): ChatCompletionDelta | undefined {
    if (this.#parser === undefined) return undefined;
    const update = this.#parser.update("", true);
    if (update.ok) return this.#merge(update.diffs);
    return this.#emitted ? undefined : this.#emit({ content: this.#text });
  }

  /** The whole reply as the assistant's message. */
  message(text: string): ChatCompletionMessage {
    if (this.#parser === undefined) return { role: "assistant", content: text };
    const update = this.#parser.update(text, true);
    if (!update.ok) return { role: "assistant", content: text };
    return this.#toMessage(update.message);
  }

  /** "tool_calls" for a reply that calls tools and ended by itself. */
  finishReason(reason: FinishReason): ChatFinishReason {
    return reason === "stop" && this.#toolCalls > 0 ? "tool_calls" : reason;
  }

  #toMessage(parsed: ParsedMessage): ChatCompletionMessage {
    const calls = this.#dropToolCalls ? [] : (parsed.tool_calls ?? []).slice(0, this.#maxCalls);
    this.#toolCalls = calls.length;
    const message: ChatCompletionMessage = { role: "assistant", content: parsed.content === "" && calls.length > 0 ? null : parsed.content };
    if (parsed.reasoning_content) message.reasoning_content = parsed.reasoning_content;
    if (calls.length > 0) {
      message.tool_calls = calls.map((call) => ({
        id: call.id ?? "",
        type: "function",
        function: { name: call.function.name, arguments: call.function.arguments },
      }));
    }
    return message;
  }

  #emit(delta: ChatCompletionDelta): ChatCompletionDelta {
    this.#emitted = true;
    return delta;
  }

  /** The diffs of one update as one delta. */
  #merge(diffs: ReplyDiff[]): ChatCompletionDelta | undefined {
    const delta: ChatCompletionDelta = {};
    for (const diff of diffs) {
      if (diff.reasoningContent) delta.reasoning_content = (delta.reasoning_content ?? "") + diff.reasoningContent;
      if (diff.content) delta.content = (delta.content ?? "") + diff.content;
      if (diff.toolCall && !this.#dropToolCalls && diff.toolCall.index < this.#maxCalls) this.#addToolCall(delta, diff.toolCall);
    }
    return Object.keys(delta).length > 0 ? this.#emit(delta) : undefined;
  }

  #addToolCall(delta: ChatCompletionDelta, call: NonNullable<ReplyDiff["toolCall"]>): void {
    const calls = (delta.tool_calls ??= []);
    let entry = calls.find((c) => c.index === call.index);
    if (entry === undefined) {
      entry = { index: call.index };
      calls.push(entry);
    }
    if (!this.#announced.has(call.index)) {
      this.#announced.add(call.index);
      this.#toolCalls = Math.max(this.#toolCalls, call.index + 1);
      entry.id = call.id;
      entry.type = "function";
      entry.function = { name: call.name, arguments: call.arguments };
      return;
    }
    if (call.arguments === "") return;
    const fn: NonNullable<ChatToolCallDelta["function"]> = (entry.function ??= {});
    fn.arguments = (fn.arguments ?? "") + call.arguments;
  }
}
