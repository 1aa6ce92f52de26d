// Shared by the chat template and tool tests: real templates from the vendored llama.cpp, tools
// whose arguments a grammar can always close, and a conversation with a tool round.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ChatMessage, ChatTool } from "../../lib/index.js";
import { llamaCppDir } from "../helpers.js";

/** Ten families that ship Jinja templates with tools, as named in llama.cpp's models/templates. */
export const TOOL_TEMPLATES = [
  "meta-llama-Llama-3.1-8B-Instruct",
  "Qwen-Qwen2.5-7B-Instruct",
  "Qwen-Qwen3-0.6B",
  "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
  "mistralai-Mistral-Nemo-Instruct-2407",
  "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
  "google-gemma-4-31B-it",
  "ibm-granite-granite-4.0",
  "meetkai-functionary-medium-v3.2",
  "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
] as const;

/**
 * What a tiny model needs to be led to a call, per template: reasoning templates think first, and
 * a tiny model never stops thinking by itself, so the budget closes the thought at once (Qwen 3's
 * opening tag is plain text in the test model's vocabulary, so its thinking is switched off).
 */
export const CALL_OPTIONS: Partial<Record<string, { reasoningBudget?: number; chatTemplateKwargs?: Record<string, unknown> }>> = {
  "Qwen-Qwen3-0.6B": { chatTemplateKwargs: { enable_thinking: false } },
  "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": { reasoningBudget: 0 },
};

/**
 * Templates whose grammar from llama.cpp does not lead a tiny model to one valid call, and why:
 * they work with a model that follows its template, which a tiny model does not.
 */
export const LOOSE_GRAMMAR = new Map<string, string>([
  ["google-gemma-4-31B-it", "calls take any dictionary of values, not the tool's schema, and may follow free messages"],
  ["meetkai-functionary-medium-v3.2", "any number of calls even without parallel_tool_calls: the tiny model calls until maxTokens"],
  ["CohereForAI-c4ai-command-r7b-12-2024-tool_use", "a free-text response may come before the call"],
]);

/** More templates with tools, for the constrained calls beside TOOL_TEMPLATES. */
export const MORE_TOOL_TEMPLATES = ["meta-llama-Llama-3.2-3B-Instruct", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "ibm-granite-granite-4.1"] as const;

export function templatePath(name: string): string {
  return join(llamaCppDir(), "models", "templates", `${name}.jinja`);
}

export function templateSource(name: string): string {
  return readFileSync(templatePath(name), "utf8");
}

// Enums keep every argument finite, so that a grammar-led tiny model always closes its call.
export const WEATHER: ChatTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Paris", "Tokyo", "Lima"] }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city", "unit"],
    },
  },
};

export const TIME: ChatTool = {
  type: "function",
  function: {
    name: "get_time",
    description: "The time in a zone",
    parameters: { type: "object", properties: { zone: { type: "string", enum: ["UTC", "CET"] } }, required: ["zone"] },
  },
};

// Mistral's templates take only 9-character alphanumeric call ids.
export const CALL_ID = "call00001";

/** A conversation with one tool round, then a new question. */
export const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "What is the weather in Paris?" },
  {
    role: "assistant",
    content: null,
    tool_calls: [{ id: CALL_ID, type: "function", function: { name: "get_weather", arguments: '{"city": "Paris", "unit": "celsius"}' } }],
  },
  { role: "tool", tool_call_id: CALL_ID, content: '{"temperature": 21}' },
  { role: "assistant", content: "It is 21 degrees in Paris." },
  { role: "user", content: "And in Tokyo?" },
];
