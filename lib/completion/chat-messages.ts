// The checks of a chat's messages, tools and tool choice, in OpenAI's shapes: each mistake is a
// LlamaError INVALID_ARGUMENT naming the field, before anything reaches the template.
import { LlamaError } from "../errors.js";
import type { ChatMessage, ChatTool, ChatToolChoice } from "./types.js";

function invalid(message: string): LlamaError {
  return new LlamaError("INVALID_ARGUMENT", message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkContent(name: string, content: unknown): void {
  if (content === undefined || content === null || typeof content === "string") return;
  if (!Array.isArray(content)) throw new TypeError(`${name} must be a string, an array of content parts or null`);
  content.forEach((part, i) => {
    const at = `${name}[${i}]`;
    if (!isObject(part)) throw invalid(`${at} must be a content part object`);
    // media_marker: where an image_url or input_audio part was (completion/media.ts).
    if (part.type === "text" || part.type === "media_marker") {
      if (typeof part.text !== "string") throw invalid(`${at}.text must be a string`);
    } else if (part.type === "image_url") {
      if (!isObject(part.image_url) || typeof part.image_url.url !== "string") throw invalid(`${at} must be { type: "image_url", image_url: { url: string } }`);
    } else if (part.type === "input_audio") {
      const audio = part.input_audio;
      if (!isObject(audio) || typeof audio.data !== "string" || typeof audio.format !== "string") {
        throw invalid(`${at} must be { type: "input_audio", input_audio: { data: base64 string, format: "wav" | "mp3" | "flac" } }`);
      }
    } else {
      throw invalid(`${at}.type must be "text", "image_url" or "input_audio"`);
    }
  });
}

function checkToolCalls(name: string, calls: unknown): void {
  if (!Array.isArray(calls)) throw invalid(`${name} must be an array of tool calls`);
  calls.forEach((call, i) => {
    const at = `${name}[${i}]`;
    if (!isObject(call)) throw invalid(`${at} must be an object`);
    if (call.type !== undefined && call.type !== "function") throw invalid(`${at}.type must be "function"`);
    if (call.id !== undefined && typeof call.id !== "string") throw invalid(`${at}.id must be a string`);
    if (!isObject(call.function)) throw invalid(`${at}.function must be an object`);
    if (typeof call.function.name !== "string" || call.function.name === "") throw invalid(`${at}.function.name must be a non-empty string`);
    const args = call.function.arguments;
    if (typeof args !== "string" && !isObject(args)) throw invalid(`${at}.function.arguments must be a JSON string or an object`);
  });
}

/** Checks a chat's messages (OpenAI's shapes); returns them. */
export function checkMessages(messages: unknown): ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new TypeError("messages must be a non-empty array");
  messages.forEach((m, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw new TypeError(`${at} must be an object`);
    if (typeof m.role !== "string" || m.role === "") throw new TypeError(`${at}.role must be a non-empty string`);
    const hasCalls = m.tool_calls !== undefined && m.tool_calls !== null;
    if (hasCalls) {
      if (m.role !== "assistant") throw invalid(`${at}.tool_calls: only assistant messages carry tool calls`);
      checkToolCalls(`${at}.tool_calls`, m.tool_calls);
    }
    checkContent(`${at}.content`, m.content);
    if (m.role === "tool" && (typeof m.tool_call_id !== "string" || m.tool_call_id === "")) {
      throw invalid(`${at}.tool_call_id is required: a tool message answers the call with that id`);
    }
    for (const key of ["name", "tool_call_id", "reasoning_content"] as const) {
      if (m[key] !== undefined && m[key] !== null && typeof m[key] !== "string") throw new TypeError(`${at}.${key} must be a string`);
    }
  });
  return messages as ChatMessage[];
}

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Checks the tools (OpenAI's function tools); returns them. */
export function checkTools(tools: unknown): ChatTool[] {
  if (!Array.isArray(tools)) throw invalid("tools must be an array of tools");
  const names = new Set<string>();
  tools.forEach((tool, i) => {
    const at = `tools[${i}]`;
    if (!isObject(tool)) throw invalid(`${at} must be an object`);
    if (tool.type !== "function") throw invalid(`${at}.type must be "function"`);
    const fn = tool.function;
    if (!isObject(fn)) throw invalid(`${at}.function must be an object`);
    if (typeof fn.name !== "string" || !TOOL_NAME.test(fn.name)) {
      throw invalid(`${at}.function.name must be 1 to 64 letters, digits, "_", "." or "-"`);
    }
    if (names.has(fn.name)) throw invalid(`${at}.function.name: two tools are named ${fn.name}`);
    names.add(fn.name);
    if (fn.description !== undefined && typeof fn.description !== "string") throw invalid(`${at}.function.description must be a string`);
    if (fn.parameters !== undefined && !isObject(fn.parameters)) throw invalid(`${at}.function.parameters must be a JSON schema object`);
  });
  return tools as ChatTool[];
}

/**
 * The tool choice as llama.cpp takes it, with the tools to offer: a named function is the only
 * tool offered, and required.
 */
export function resolveToolChoice(choice: unknown, tools: ChatTool[]): { choice: "auto" | "none" | "required"; tools: ChatTool[] } {
  if (choice === undefined || choice === null) return { choice: "auto", tools };
  if (choice === "auto" || choice === "none" || choice === "required") {
    if (choice === "required" && tools.length === 0) throw invalid('toolChoice "required" needs tools');
    return { choice, tools };
  }
  const named = choice as ChatToolChoice;
  if (!isObject(named) || named.type !== "function" || !isObject(named.function) || typeof named.function.name !== "string") {
    throw invalid('toolChoice must be "auto", "none", "required" or { type: "function", function: { name } }');
  }
  const name = named.function.name;
  const tool = tools.find((t) => t.function.name === name);
  if (tool === undefined) throw invalid(`toolChoice names ${name}, which is not among the tools`);
  return { choice: "required", tools: [tool] };
}
