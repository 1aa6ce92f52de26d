// A chat completion as a Responses API answer: the response object (reasoning, message and
// function_call output items, usage in input/output tokens), whole or as the Responses API's named
// server-sent events, numbered in order, ending in response.completed or response.incomplete.
import { randomUUID } from "node:crypto";
import type { ChatCompletion, ChatCompletionChunk, ChatFinishReason, CompletionUsage } from "../completion/types.js";
import type { EventFormat } from "./events.js";
import type { ApiError } from "./requests.js";
import type { ResponseSettings } from "./responses-request.js";

type ItemStatus = "in_progress" | "completed" | "incomplete";

interface OutputText {
  type: "output_text";
  text: string;
  annotations: [];
  logprobs: [];
}

interface ReasoningText {
  type: "reasoning_text";
  text: string;
}

export type OutputItem =
  | { type: "message"; id: string; status: ItemStatus; role: "assistant"; content: OutputText[] }
  | { type: "reasoning"; id: string; status: ItemStatus; summary: []; content: ReasoningText[] }
  | { type: "function_call"; id: string; status: ItemStatus; call_id: string; name: string; arguments: string };

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export type ResponseStatus = "in_progress" | "completed" | "incomplete";

export interface ResponseObject extends ResponseSettings {
  id: string;
  object: "response";
  created_at: number;
  status: ResponseStatus;
  background: false;
  error: null;
  incomplete_details: { reason: "max_output_tokens" } | null;
  model: string;
  output: OutputItem[];
  previous_response_id: null;
  reasoning: { effort: null; summary: null };
  store: false;
  truncation: "disabled";
  usage: ResponseUsage | null;
}

export interface ResponseEvent {
  type: string;
  sequence_number: number;
  [field: string]: unknown;
}

function newId(prefix: string): string {
  return `${prefix}_${randomUUID().replace(/-/g, "")}`;
}

function responseUsage(usage: CompletionUsage): ResponseUsage {
  return {
    input_tokens: usage.prompt_tokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.total_tokens,
  };
}

function outputText(text: string): OutputText {
  return { type: "output_text", text, annotations: [], logprobs: [] };
}

/** The reply ended at the token cap (or a full context): the response and its last item are incomplete. */
function statusOf(finish: ChatFinishReason | null): "completed" | "incomplete" {
  return finish === "length" ? "incomplete" : "completed";
}

/** The item being streamed: its text (or arguments) so far, and the chat tool call it is. */
interface OpenItem {
  item: OutputItem;
  index: number;
  text: string;
  toolIndex?: number;
}

/** One response: its id, the whole object from a chat completion, or its events from chat chunks. */
export class ResponseWriter implements EventFormat<ResponseEvent> {
  readonly id = newId("resp");
  readonly createdAt = Math.floor(Date.now() / 1000);
  readonly end = "";
  readonly #settings: ResponseSettings;
  readonly #model: string;
  #sequence = 0;
  readonly #output: OutputItem[] = [];
  #open: OpenItem | null = null;

  constructor(settings: ResponseSettings, model: string) {
    this.#settings = settings;
    this.#model = model;
  }

  #response(status: ResponseStatus, output: OutputItem[], usage: CompletionUsage | null): ResponseObject {
    return {
      id: this.id,
      object: "response",
      created_at: this.createdAt,
      status,
      background: false,
      error: null,
      incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
      model: this.#model,
      output,
      previous_response_id: null,
      reasoning: { effort: null, summary: null },
      store: false,
      truncation: "disabled",
      usage: usage === null ? null : responseUsage(usage),
      ...this.#settings,
    };
  }

  /** The response to a whole chat completion. */
  whole(completion: ChatCompletion): ResponseObject {
    const { message, finish_reason: finish } = completion.choices[0]!;
    const output: OutputItem[] = [];
    if (message.reasoning_content) {
      output.push({ type: "reasoning", id: newId("rs"), status: "completed", summary: [], content: [{ type: "reasoning_text", text: message.reasoning_content }] });
    }
    const calls = message.tool_calls ?? [];
    if (message.content !== null || calls.length === 0) {
      output.push({ type: "message", id: newId("msg"), status: "completed", role: "assistant", content: [outputText(message.content ?? "")] });
    }
    for (const call of calls) {
      output.push({ type: "function_call", id: newId("fc"), status: "completed", call_id: call.id || newId("call"), name: call.function.name, arguments: call.function.arguments });
    }
    output.at(-1)!.status = statusOf(finish);
    return this.#response(statusOf(finish), output, completion.usage);
  }

  /**
   * The events of a streamed response, from chat chunks that end with their usage. An output item
   * opens when its first text arrives and closes when another begins or the reply ends.
   */
  async *events(chunks: AsyncIterable<ChatCompletionChunk>): AsyncGenerator<ResponseEvent> {
    yield this.#event("response.created", { response: this.#response("in_progress", [], null) });
    yield this.#event("response.in_progress", { response: this.#response("in_progress", [], null) });
    let finish: ChatFinishReason | null = null;
    let usage: CompletionUsage | null = null;
    for await (const chunk of chunks) {
      usage = chunk.usage ?? usage;
      const choice = chunk.choices[0];
      if (choice === undefined) continue;
      finish = choice.finish_reason ?? finish;
      const { reasoning_content: reasoning, content, tool_calls: calls } = choice.delta;
      if (reasoning) yield* this.#append("reasoning", reasoning);
      if (content) yield* this.#append("message", content);
      for (const call of calls ?? []) yield* this.#append("function_call", call.function?.arguments ?? "", call);
    }
    // As whole(): a reply without text or calls is one empty message.
    if (!this.#output.some((item) => item.type !== "reasoning") && this.#open?.item.type !== "message") yield* this.#append("message", "");
    yield* this.#close(statusOf(finish));
    const status = statusOf(finish);
    yield this.#event(status === "completed" ? "response.completed" : "response.incomplete", { response: this.#response(status, this.#output, usage) });
  }

  /** Text for an item of `type` (a chat tool call's `call` for function calls), opening it when need be. */
  *#append(type: OutputItem["type"], text: string, call?: { index: number; id?: string; function?: { name?: string } }): Generator<ResponseEvent> {
    const open = this.#open;
    if (open === null || open.item.type !== type || open.toolIndex !== call?.index) yield* this.#start(type, call);
    const { item, index, text: before } = this.#open!;
    this.#open!.text = before + text;
    if (text === "") return;
    const at = { item_id: item.id, output_index: index };
    if (type === "message") yield this.#event("response.output_text.delta", { ...at, content_index: 0, delta: text, logprobs: [] });
    else if (type === "reasoning") yield this.#event("response.reasoning_text.delta", { ...at, content_index: 0, delta: text });
    else yield this.#event("response.function_call_arguments.delta", { ...at, delta: text });
  }

  *#start(type: OutputItem["type"], call?: { index: number; id?: string; function?: { name?: string } }): Generator<ResponseEvent> {
    yield* this.#close("completed");
    const status = "in_progress";
    const item: OutputItem =
      type === "message"
        ? { type, id: newId("msg"), status, role: "assistant", content: [] }
        : type === "reasoning"
          ? { type, id: newId("rs"), status, summary: [], content: [] }
          : { type, id: newId("fc"), status, call_id: call?.id || newId("call"), name: call?.function?.name ?? "", arguments: "" };
    const index = this.#output.length;
    this.#output.push(item);
    this.#open = { item, index, text: "", toolIndex: call?.index };
    yield this.#event("response.output_item.added", { output_index: index, item: { ...item } });
    if (item.type === "function_call") return;
    const part = item.type === "message" ? outputText("") : { type: "reasoning_text", text: "" };
    yield this.#event("response.content_part.added", { item_id: item.id, output_index: index, content_index: 0, part });
  }

  /** Closes the open item, if any, with `status`. */
  *#close(status: ItemStatus): Generator<ResponseEvent> {
    const open = this.#open;
    if (open === null) return;
    this.#open = null;
    const { item, index, text } = open;
    const at = { item_id: item.id, output_index: index };
    item.status = status;
    if (item.type === "function_call") {
      item.arguments = text;
      yield this.#event("response.function_call_arguments.done", { ...at, name: item.name, arguments: text });
    } else if (item.type === "message") {
      item.content = [outputText(text)];
      yield this.#event("response.output_text.done", { ...at, content_index: 0, text, logprobs: [] });
      yield this.#event("response.content_part.done", { ...at, content_index: 0, part: outputText(text) });
    } else {
      item.content = [{ type: "reasoning_text", text }];
      yield this.#event("response.reasoning_text.done", { ...at, content_index: 0, text });
      yield this.#event("response.content_part.done", { ...at, content_index: 0, part: { type: "reasoning_text", text } });
    }
    yield this.#event("response.output_item.done", { output_index: index, item: structuredClone(item) });
  }

  #event(type: string, fields: Record<string, unknown>): ResponseEvent {
    return { type, sequence_number: this.#sequence++, ...fields };
  }

  /** A Responses API event: named, and with its JSON as data. */
  event(event: ResponseEvent): string {
    return `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
  }

  /** The error event that ends a stream early, numbered after the events sent. */
  error(error: ApiError): string {
    const { message, param, code } = error.body.error;
    return this.event({ type: "error", sequence_number: this.#sequence++, code, message, param });
  }
}
