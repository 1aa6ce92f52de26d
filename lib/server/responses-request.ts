// A Responses API request (POST /v1/responses) as the chat request it amounts to: `instructions`
// and the `input` items become chat messages, function tools and the tool choice take chat's
// shape, `max_output_tokens` and `text.format` become chat's fields, and the sampling fields
// (OpenAI's and llama.cpp's) pass on unchanged, so chatRequest checks them as for chat. What this
// server cannot do (stored responses, built-in tools, images) is a 400 naming the field.
import type { ChatCompletionOptions } from "../completion/llama.js";
import type { ChatContentPart, ChatMessage, ChatToolCall } from "../completion/types.js";
import { badRequest, chatRequest, type RequestLimits } from "./requests.js";

/** A function tool in the Responses API's shape. */
export interface FunctionTool {
  type: "function";
  name: string;
  description: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean | null;
}

export type ResponseToolChoice = "auto" | "none" | "required" | { type: "function"; name: string };

/** The request's settings, which the response object repeats. */
export interface ResponseSettings {
  instructions: string | null;
  max_output_tokens: number | null;
  temperature: number | null;
  top_p: number | null;
  tools: FunctionTool[];
  tool_choice: ResponseToolChoice;
  parallel_tool_calls: boolean;
  text: { format: Record<string, unknown>; verbosity?: string };
  metadata: Record<string, unknown>;
}

export interface ResponsesRequest {
  options: ChatCompletionOptions;
  stream: boolean;
  settings: ResponseSettings;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function unsupported(message: string, param: string): never {
  throw badRequest(message, param, "unsupported");
}

/** Fields this server does not support: a 400 when a request sets them, rather than an answer that ignores them. */
const UNSUPPORTED: Array<[field: string, set: (value: unknown) => boolean, why: string]> = [
  ["previous_response_id", present, "this server stores no responses: send the whole conversation as input"],
  ["conversation", present, "this server stores no conversations: send the whole conversation as input"],
  ["background", (v) => v === true, "background responses are not supported"],
  ["prompt", present, "stored prompts are not supported: send instructions and input"],
  ["include", (v) => (Array.isArray(v) ? v.length > 0 : present(v)), "no additional output data can be included"],
  ["reasoning", (v) => (isObject(v) ? Object.values(v).some(present) : present(v)), "reasoning settings are not supported (chat_template_kwargs and reasoning_format are)"],
  ["truncation", (v) => present(v) && v !== "disabled", 'only truncation "disabled" is supported'],
  ["max_tool_calls", present, "max_tool_calls is not supported (parallel_tool_calls is)"],
  ["top_logprobs", (v) => present(v) && v !== 0, "log-probabilities are not supported here (they are on /v1/chat/completions)"],
  ["logprobs", (v) => present(v) && v !== false, "log-probabilities are not supported here (they are on /v1/chat/completions)"],
];

/** Chat completions fields, which the Responses API names otherwise. */
const CHAT_FIELDS: Record<string, string> = {
  messages: "input",
  max_tokens: "max_output_tokens",
  max_completion_tokens: "max_output_tokens",
  response_format: "text.format",
  functions: "tools",
};

const ROLES = new Set(["user", "system", "developer", "assistant"]);
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** A message's content: a string, or input_text / output_text parts (joined), with input_image or input_audio parts as a chat's parts. */
function contentOf(value: unknown, at: string): ChatMessage["content"] {
  if (typeof value === "string") return value;
  if (!Array.isArray(value)) throw badRequest(`${at} must be a string or an array of content parts`, at);
  const parts: ChatContentPart[] = value.map((part, i) => {
    if (!isObject(part)) throw badRequest(`${at}[${i}] must be an object`, `${at}[${i}]`);
    if (part.type === "input_image") {
      if (typeof part.image_url !== "string") unsupported(`${at}[${i}]: an input_image needs an image_url (file_id is not supported)`, `${at}[${i}].image_url`);
      return { type: "image_url", image_url: { url: part.image_url as string } };
    }
    if (part.type === "input_audio") return { type: "input_audio", input_audio: part.input_audio as { data: string; format: "wav" } };
    if (part.type !== "input_text" && part.type !== "output_text") {
      unsupported(`${at}[${i}].type: only input_text, output_text, input_image and input_audio parts are supported, not ${JSON.stringify(part.type)}`, `${at}[${i}].type`);
    }
    if (typeof part.text !== "string") throw badRequest(`${at}[${i}].text must be a string`, `${at}[${i}].text`);
    return { type: "text", text: part.text };
  });
  if (parts.some((part) => part.type !== "text")) return parts;
  return parts.map((part) => (part.type === "text" ? part.text : "")).join("");
}

function stringField(item: Json, key: string, at: string): string {
  const value = item[key];
  if (typeof value !== "string" || value === "") throw badRequest(`${at}.${key} must be a non-empty string`, `${at}.${key}`);
  return value;
}

/** A reasoning item's text: its reasoning_text content, else its summary. */
function reasoningOf(item: Json, at: string): string {
  const parts = Array.isArray(item.content) && item.content.length > 0 ? item.content : item.summary;
  if (!Array.isArray(parts)) throw badRequest(`${at}.summary must be an array`, `${at}.summary`);
  return parts.map((p: unknown) => (isObject(p) && typeof p.text === "string" ? p.text : "")).join("");
}

/**
 * The input items as chat messages. A function_call joins the assistant message before it (or
 * starts one); a function_call_output is a tool message answering an earlier call, named after it;
 * a reasoning item's text is the next assistant message's reasoning_content.
 */
function messagesOf(input: unknown, instructions: string | null): ChatMessage[] {
  const messages: ChatMessage[] = instructions ? [{ role: "system", content: instructions }] : [];
  if (typeof input === "string") return [...messages, { role: "user", content: input }];
  if (!present(input)) throw badRequest("input is required", "input", "missing_required_parameter");
  if (!Array.isArray(input) || input.length === 0) throw badRequest("input must be a string or a non-empty array of input items", "input");
  const callNames = new Map<string, string>();
  let reasoning: string | undefined;
  const assistant = (message: ChatMessage): ChatMessage => {
    if (reasoning) message.reasoning_content = reasoning;
    reasoning = undefined;
    return message;
  };
  input.forEach((item, i) => {
    const at = `input[${i}]`;
    if (!isObject(item)) throw badRequest(`${at} must be an object`, at);
    const type = item.type ?? (present(item.role) ? "message" : undefined);
    if (type === "message") {
      if (typeof item.role !== "string" || !ROLES.has(item.role)) {
        throw badRequest(`${at}.role must be "user", "system", "developer" or "assistant", not ${JSON.stringify(item.role)}`, `${at}.role`);
      }
      const message: ChatMessage = { role: item.role, content: contentOf(item.content, `${at}.content`) };
      messages.push(item.role === "assistant" ? assistant(message) : message);
    } else if (type === "function_call") {
      const call: ChatToolCall = { id: stringField(item, "call_id", at), type: "function", function: { name: stringField(item, "name", at), arguments: "" } };
      if (typeof item.arguments !== "string") throw badRequest(`${at}.arguments must be a string of JSON`, `${at}.arguments`);
      call.function.arguments = item.arguments;
      callNames.set(call.id, call.function.name);
      const last = messages.at(-1);
      if (last?.role === "assistant" && !reasoning) (last.tool_calls ??= []).push(call);
      else messages.push(assistant({ role: "assistant", content: null, tool_calls: [call] }));
    } else if (type === "function_call_output") {
      const callId = stringField(item, "call_id", at);
      const name = callNames.get(callId);
      if (name === undefined) throw badRequest(`${at}.call_id: no function_call with call_id ${JSON.stringify(callId)} comes before it`, `${at}.call_id`);
      messages.push({ role: "tool", tool_call_id: callId, name, content: contentOf(item.output, `${at}.output`) });
    } else if (type === "reasoning") {
      reasoning = reasoningOf(item, at);
    } else {
      unsupported(`${at}.type: ${JSON.stringify(type)} items are not supported (message, function_call, function_call_output and reasoning are)`, `${at}.type`);
    }
  });
  return messages;
}

function toolsOf(value: unknown): FunctionTool[] {
  if (!present(value)) return [];
  if (!Array.isArray(value)) throw badRequest("tools must be an array", "tools");
  const names = new Set<string>();
  return value.map((tool, i) => {
    const at = `tools[${i}]`;
    if (!isObject(tool)) throw badRequest(`${at} must be an object`, at);
    if (tool.type !== "function") unsupported(`${at}.type: only function tools are supported, not ${JSON.stringify(tool.type)}`, `${at}.type`);
    if (typeof tool.name !== "string" || !TOOL_NAME.test(tool.name)) throw badRequest(`${at}.name must be 1 to 64 letters, digits, "_", "." or "-"`, `${at}.name`);
    if (names.has(tool.name)) throw badRequest(`${at}.name: two tools are named ${tool.name}`, `${at}.name`);
    names.add(tool.name);
    const { description, parameters, strict } = tool;
    if (present(description) && typeof description !== "string") throw badRequest(`${at}.description must be a string`, `${at}.description`);
    if (present(parameters) && !isObject(parameters)) throw badRequest(`${at}.parameters must be a JSON schema object`, `${at}.parameters`);
    if (present(strict) && typeof strict !== "boolean") throw badRequest(`${at}.strict must be a boolean`, `${at}.strict`);
    return { type: "function", name: tool.name, description: (description as string | undefined) ?? null, parameters: (parameters as Json | undefined) ?? null, strict: (strict as boolean | undefined) ?? null };
  });
}

function toolChoiceOf(value: unknown, tools: FunctionTool[]): ResponseToolChoice {
  if (!present(value)) return "auto";
  if (value === "auto" || value === "none" || value === "required") {
    if (value === "required" && tools.length === 0) throw badRequest('tool_choice "required" needs tools', "tool_choice");
    return value;
  }
  if (!isObject(value) || value.type !== "function") {
    unsupported('tool_choice must be "auto", "none", "required" or { type: "function", name }', "tool_choice");
  }
  if (typeof value.name !== "string" || !tools.some((t) => t.name === value.name)) {
    throw badRequest(`tool_choice names ${JSON.stringify(value.name)}, which is not among the tools`, "tool_choice");
  }
  return { type: "function", name: value.name };
}

/** `text`: its format as chat's response_format (undefined: plain text), and what the response repeats. */
function textOf(value: unknown): { format: Json | undefined; text: ResponseSettings["text"] } {
  if (!present(value)) return { format: undefined, text: { format: { type: "text" } } };
  if (!isObject(value)) throw badRequest("text must be an object", "text");
  const { format, verbosity } = value;
  if (present(verbosity) && !["low", "medium", "high"].includes(verbosity as string)) throw badRequest('text.verbosity must be "low", "medium" or "high"', "text.verbosity");
  const text: ResponseSettings["text"] = { format: { type: "text" }, ...(present(verbosity) ? { verbosity: verbosity as string } : {}) };
  if (!present(format)) return { format: undefined, text };
  if (!isObject(format)) throw badRequest("text.format must be an object", "text.format");
  text.format = format;
  if (format.type === "text") return { format: undefined, text };
  if (format.type === "json_object") return { format: { type: "json_object" }, text };
  if (format.type === "json_schema") {
    if (!isObject(format.schema)) throw badRequest("text.format.schema must be a JSON schema object", "text.format.schema");
    return { format: { type: "json_schema", json_schema: { name: format.name, schema: format.schema, strict: format.strict } }, text };
  }
  throw badRequest('text.format.type must be "text", "json_object" or "json_schema"', "text.format.type");
}

function maxOutputTokensOf(value: unknown, cap: number): number | null {
  if (!present(value)) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw badRequest("max_output_tokens must be a positive integer", "max_output_tokens");
  if (value > cap) throw badRequest(`max_output_tokens is ${value}, but this server allows at most ${cap}`, "max_output_tokens");
  return value;
}

export function responsesRequest(body: unknown, limits: RequestLimits): ResponsesRequest {
  if (!isObject(body)) throw badRequest("the request body must be a JSON object");
  for (const [field, set, why] of UNSUPPORTED) if (set(body[field])) unsupported(`${field}: ${why}`, field);
  for (const [field, instead] of Object.entries(CHAT_FIELDS)) {
    if (present(body[field])) throw badRequest(`${field} is a chat completions field: the Responses API takes ${instead}`, field, "unsupported");
  }
  const { input, instructions, max_output_tokens: maxOutput, tools: toolsField, tool_choice: choiceField, text: textField, stream, stream_options: _s, ...rest } = body;
  if (present(instructions) && typeof instructions !== "string") throw badRequest("instructions must be a string", "instructions");
  if (present(stream) && typeof stream !== "boolean") throw badRequest("stream must be a boolean", "stream");
  if (present(body.metadata) && !isObject(body.metadata)) throw badRequest("metadata must be an object", "metadata");
  const messages = messagesOf(input, (instructions as string | undefined) || null);
  const tools = toolsOf(toolsField);
  const toolChoice = toolChoiceOf(choiceField, tools);
  const { format, text } = textOf(textField);
  const maxOutputTokens = maxOutputTokensOf(maxOutput, limits.maxTokensCap);
  const chatBody: Json = {
    ...rest,
    messages,
    tools: tools.map(({ type, name, description, parameters, strict }) => ({
      type,
      function: { name, ...(description === null ? {} : { description }), ...(parameters === null ? {} : { parameters }), ...(strict === null ? {} : { strict }) },
    })),
    tool_choice: typeof toolChoice === "string" ? toolChoice : { type: "function", function: { name: toolChoice.name } },
    max_completion_tokens: maxOutputTokens,
    response_format: format,
  };
  // Those set to their "off" values (include: [], truncation: "disabled", ...) are not chat's.
  for (const [field] of UNSUPPORTED) delete chatBody[field];
  const { options } = chatRequest(chatBody, limits);
  const number = (value: unknown) => (typeof value === "number" ? value : null);
  const settings: ResponseSettings = {
    instructions: (instructions as string | undefined) ?? null,
    max_output_tokens: maxOutputTokens,
    temperature: number(body.temperature),
    top_p: number(body.top_p),
    tools,
    tool_choice: toolChoice,
    parallel_tool_calls: options.parallelToolCalls ?? false,
    text,
    metadata: (body.metadata as Json | undefined) ?? {},
  };
  return { options, stream: stream === true, settings };
}
