// Jinja chat templates and tool calls through Llama: prompts rendered as llama-server renders them,
// calls that a grammar makes a tiny model produce, replies parsed into OpenAI's shapes, and bad
// input as typed errors.
import Ajv from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, LlamaError, type ChatCompletionChunk, type ChatTool } from "../../lib/index.js";
import { JinjaTemplates, ReplyParser } from "../../lib/core/jinja-templates.js";
import { drain, errorOf, modelPath } from "../helpers.js";
import { startLlamaServer } from "../llama-server.js";
import { CALL_OPTIONS, CONVERSATION, LOOSE_GRAMMAR, MORE_TOOL_TEMPLATES, TIME, TOOL_TEMPLATES, WEATHER, templatePath, templateSource } from "./chat-tools.fixtures.js";

const STORIES = () => modelPath("stories260K.gguf");
const ajv = new Ajv();

function loadWith(template: string): Promise<Llama> {
  return Llama.load({ modelPath: STORIES(), chatTemplate: templateSource(template), nCtx: 8192, nThreads: 2 });
}

/** Checks a reply's calls against the tools: known names, arguments that satisfy their schemas. */
function expectValidCalls(calls: Array<{ id: string; type: string; function: { name: string; arguments: string } }>, tools: ChatTool[]): void {
  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) {
    expect(call.type).toBe("function");
    expect(call.id).toMatch(/\S/);
    const tool = tools.find((t) => t.function.name === call.function.name);
    expect(tool, `a call of ${call.function.name}`).toBeDefined();
    const args: unknown = JSON.parse(call.function.arguments);
    expect(ajv.validate(tool!.function.parameters!, args), `${call.function.arguments}: ${ajv.errorsText()}`).toBe(true);
  }
}

describe("prompts as llama-server renders them (its POST /apply-template, built from the same source)", () => {
  it.each(TOOL_TEMPLATES)("%s", async (template) => {
    const server = await startLlamaServer(STORIES(), ["--chat-template-file", templatePath(template)]);
    const llm = await Llama.load({ modelPath: STORIES(), chatTemplate: templateSource(template), vocabOnly: true });
    try {
      for (const body of [
        { messages: CONVERSATION, tools: [WEATHER, TIME] },
        { messages: CONVERSATION.slice(0, 2), tools: [WEATHER] },
        { messages: CONVERSATION.slice(0, 2) },
      ]) {
        const reference = (await server.post("/apply-template", body)).prompt;
        expect(llm.formatChat(body.messages, { tools: body.tools }).prompt).toBe(reference);
      }
    } finally {
      await llm.dispose();
      await server.stop();
    }
  });
});

describe("constrained tool calls on a tiny model", () => {
  it.each([...TOOL_TEMPLATES.filter((t) => !LOOSE_GRAMMAR.has(t)), ...MORE_TOOL_TEMPLATES])("%s: required, a named function, and none", async (template) => {
    const llm = await loadWith(template);
    try {
      const messages = [{ role: "user", content: "What is the weather in Paris?" }];
      const tools = [WEATHER, TIME];
      const extra = CALL_OPTIONS[template] ?? {};
      const required = await llm.createChatCompletion({ messages, tools, toolChoice: "required", temperature: 0, maxTokens: 300, ...extra });
      const choice = required.choices[0]!;
      expect(choice.finish_reason).toBe("tool_calls");
      expectValidCalls(choice.message.tool_calls!, tools);

      const named = await llm.createChatCompletion({
        messages,
        tools,
        toolChoice: { type: "function", function: { name: "get_time" } },
        temperature: 0,
        maxTokens: 300,
        ...extra,
      });
      expect(named.choices[0]!.message.tool_calls!.map((c) => c.function.name)).toEqual(["get_time"]);
      expectValidCalls(named.choices[0]!.message.tool_calls!, tools);

      const none = await llm.createChatCompletion({ messages, tools, toolChoice: "none", temperature: 0, maxTokens: 24, ...extra });
      expect(none.choices[0]!.message.tool_calls).toBeUndefined();
      expect(none.choices[0]!.finish_reason).not.toBe("tool_calls");
      expect(typeof none.choices[0]!.message.content).toBe("string");
    } finally {
      await llm.dispose();
    }
  });

  it.each(["Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct", "mistralai-Mistral-Nemo-Instruct-2407"])(
    "%s: streamed calls come as OpenAI streams them, and add up to the whole reply's",
    async (template) => {
      const llm = await loadWith(template);
      try {
        const request = { messages: [{ role: "user", content: "Weather?" }], tools: [WEATHER, TIME], toolChoice: "required" as const, temperature: 0, maxTokens: 300 };
        const whole = await llm.createChatCompletion(request);
        const chunks: ChatCompletionChunk[] = await drain(llm.createChatCompletion({ ...request, stream: true }));
        const fragments = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
        const calls = whole.choices[0]!.message.tool_calls!;
        calls.forEach((call, index) => {
          const mine = fragments.filter((f) => f.index === index);
          expect(mine[0]!.id).toMatch(/\S/);
          expect(mine[0]!.type).toBe("function");
          expect(mine[0]!.function!.name).toBe(call.function.name);
          expect(mine.slice(1).every((f) => f.id === undefined && f.function?.name === undefined)).toBe(true);
          expect(mine.map((f) => f.function?.arguments ?? "").join("")).toBe(call.function.arguments);
        });
        expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("tool_calls");
      } finally {
        await llm.dispose();
      }
    },
  );

  it("a two-round loop: call, tool result, answer", async () => {
    const llm = await loadWith("Qwen-Qwen2.5-7B-Instruct");
    try {
      const messages: Parameters<Llama["createChatCompletion"]>[0]["messages"] = [{ role: "user", content: "Weather in Lima?" }];
      const first = await llm.createChatCompletion({ messages, tools: [WEATHER], toolChoice: "required", temperature: 0, maxTokens: 200 });
      const call = first.choices[0]!.message.tool_calls![0]!;
      messages.push(first.choices[0]!.message, { role: "tool", tool_call_id: call.id, content: '{"temperature": 18}' });
      const { prompt } = llm.formatChat(messages, { tools: [WEATHER] });
      expect(prompt).toContain("<tool_response>");
      expect(prompt).toContain(call.function.name);
      const second = await llm.createChatCompletion({ messages, tools: [WEATHER], toolChoice: "none", temperature: 0, maxTokens: 16 });
      expect(second.choices[0]!.finish_reason).not.toBe("tool_calls");
      expect(typeof second.choices[0]!.message.content).toBe("string");
    } finally {
      await llm.dispose();
    }
  });

  it("usage comes last in a stream with streamOptions.includeUsage", async () => {
    const llm = await loadWith("Qwen-Qwen2.5-7B-Instruct");
    try {
      const chunks = await drain(
        llm.createChatCompletion({ messages: [{ role: "user", content: "Hi" }], maxTokens: 5, temperature: 0, stream: true, streamOptions: { includeUsage: true } }),
      );
      const last = chunks.at(-1)!;
      expect(last.choices).toEqual([]);
      expect(last.usage!.completion_tokens).toBeGreaterThan(0);
      expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    } finally {
      await llm.dispose();
    }
  });
});

describe("a lazy grammar (the tool grammars of toolChoice auto)", () => {
  it("leaves the text free until a trigger word, then follows the grammar from it", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 2 });
    try {
      const o = { maxTokens: 40, temperature: 0, grammar: 'root ::= "girl named Tom."' };
      const free = await llm.createCompletion("Once upon a time", { maxTokens: 40, temperature: 0 });
      expect(free.choices[0]!.text).toContain("a little girl named Lily");
      const lazy = await llm.createCompletion("Once upon a time", { ...o, grammarTriggers: [{ type: "word", value: "girl named" }] });
      expect(lazy.choices[0]).toMatchObject({ text: ", there was a little girl named Tom.", finish_reason: "stop" });
      const eager = await llm.createCompletion("Once upon a time", o);
      expect(eager.choices[0]!.text).toBe("girl named Tom.");
    } finally {
      await llm.dispose();
    }
  });
});

describe("replies parsed by llama.cpp's chat parser", () => {
  let llm: Llama;
  beforeAll(async () => {
    llm = await loadWith("Qwen-Qwen2.5-7B-Instruct");
  });
  afterAll(() => llm.dispose());

  const hermesCall = (name: string, args: string) => `<tool_call>\n{"name": "${name}", "arguments": ${args}}\n</tool_call>`;

  it("two parallel calls, and a reply parsed as it streams", () => {
    const templates = new JinjaTemplates(llm.model, templateSource("Qwen-Qwen2.5-7B-Instruct"));
    const rendered = templates.apply({
      messages: [{ role: "user", content: "Both?" }],
      tools: [WEATHER, TIME],
      toolChoice: "auto",
      parallelToolCalls: true,
      addGenerationPrompt: true,
      reasoningFormat: "auto",
      enableThinking: false,
    });
    const reply = `${hermesCall("get_weather", '{"city": "Tokyo", "unit": "celsius"}')}\n${hermesCall("get_time", '{"zone": "UTC"}')}`;
    const whole = new ReplyParser(rendered).update(reply, true);
    expect(whole.ok).toBe(true);
    expect(whole.message.tool_calls!.map((c) => [c.function.name, JSON.parse(c.function.arguments)])).toEqual([
      ["get_weather", { city: "Tokyo", unit: "celsius" }],
      ["get_time", { zone: "UTC" }],
    ]);
    const ids = whole.message.tool_calls!.map((c) => c.id);
    expect(new Set(ids).size).toBe(2);

    // Streamed in pieces of 7 characters: one call mid-stream, then both; the argument fragments add up.
    const parser = new ReplyParser(rendered);
    const args = new Map<number, string>();
    let midStream: number | undefined;
    for (let i = 0; i < reply.length; i += 7) {
      const update = parser.update(reply.slice(i, i + 7), false);
      for (const diff of update.diffs) if (diff.toolCall) args.set(diff.toolCall.index, (args.get(diff.toolCall.index) ?? "") + diff.toolCall.arguments);
      if (i >= 60 && midStream === undefined && update.ok) midStream = update.message.tool_calls?.length ?? 0;
    }
    const last = parser.update("", true);
    for (const diff of last.diffs) if (diff.toolCall) args.set(diff.toolCall.index, (args.get(diff.toolCall.index) ?? "") + diff.toolCall.arguments);
    expect(midStream).toBe(1);
    expect(last.message.tool_calls!.map((c) => c.function.arguments)).toEqual([args.get(0), args.get(1)]);
  });

  it("thinking comes back apart as reasoning_content (and left in place with reasoningFormat none)", async () => {
    const qwen3 = await loadWith("Qwen-Qwen3-0.6B");
    try {
      const grammar = 'root ::= "<think>\\nThe user greets me.\\n</think>\\n\\nHello!"';
      const messages = [{ role: "user", content: "Hi" }];
      const split = await qwen3.createChatCompletion({ messages, grammar, temperature: 0, maxTokens: 60 });
      // llama.cpp's parser keeps the newline before </think>.
      expect(split.choices[0]!.message).toMatchObject({ content: "Hello!", reasoning_content: "The user greets me.\n" });
      const streamed = await drain(qwen3.createChatCompletion({ messages, grammar, temperature: 0, maxTokens: 60, stream: true }));
      expect(streamed.map((c) => c.choices[0]?.delta.reasoning_content ?? "").join("")).toBe("The user greets me.\n");
      expect(streamed.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Hello!");
      const inline = await qwen3.createChatCompletion({ messages, grammar, temperature: 0, maxTokens: 60, reasoningFormat: "none" });
      expect(inline.choices[0]!.message.content).toContain("<think>");
      expect(inline.choices[0]!.message.reasoning_content).toBeUndefined();
    } finally {
      await qwen3.dispose();
    }
  });
});

describe("bad input is a typed error, and the Llama goes on", () => {
  let llm: Llama;
  beforeAll(async () => {
    llm = await loadWith("Qwen-Qwen2.5-7B-Instruct");
  });
  afterAll(() => llm.dispose());

  const messages = [{ role: "user", content: "Hi" }];
  const fn = WEATHER.function;

  it.each([
    ["a tool without a name", { tools: [{ type: "function", function: { parameters: fn.parameters } }] }],
    ["parameters that are not an object", { tools: [{ type: "function", function: { name: "f", parameters: "x" } }] }],
    ["a tool that is not a function", { tools: [{ type: "retrieval", function: fn }] }],
    ["toolChoice naming a missing tool", { tools: [WEATHER], toolChoice: { type: "function", function: { name: "nope" } } }],
    ["toolChoice required without tools", { toolChoice: "required" }],
    ["a tool message without tool_call_id", { messages: [...messages, { role: "tool", content: "{}" }] }],
    ["tool calls on a user message", { messages: [{ role: "user", content: "x", tool_calls: [] }] }],
    ["a grammar with tools", { tools: [WEATHER], grammar: 'root ::= "x"' }],
  ])("%s: INVALID_ARGUMENT", async (_what, extra) => {
    const err = await errorOf(() => llm.createChatCompletion({ messages, ...(extra as object) } as never));
    expect(err).toBeInstanceOf(LlamaError);
    expect((err as LlamaError).code).toBe("INVALID_ARGUMENT");
    expect(llm.active + llm.queued).toBe(0);
  });

  it("a Jinja override that does not parse fails the load with CHAT_TEMPLATE, naming it", async () => {
    const err = await errorOf(() => Llama.load({ modelPath: STORIES(), chatTemplate: "{% for m in messages %}{{ m.content }", nCtx: 256 }));
    expect(err).toBeInstanceOf(LlamaError);
    expect((err as LlamaError).code).toBe("CHAT_TEMPLATE");
    expect((err as LlamaError).message).toMatch(/chatTemplate option/);
  });

  it("a template that raises while rendering is CHAT_TEMPLATE with its message; the next request works", async () => {
    const raising = await Llama.load({
      modelPath: STORIES(),
      nCtx: 512,
      chatTemplate: "{% if messages[0].role != 'system' %}{{ raise_exception('a system message must come first') }}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}",
    });
    try {
      const err = await errorOf(() => raising.createChatCompletion({ messages, maxTokens: 2 }));
      expect((err as LlamaError).code).toBe("CHAT_TEMPLATE");
      expect((err as LlamaError).message).toContain("a system message must come first");
      const ok = await raising.createChatCompletion({ messages: [{ role: "system", content: "S" }, ...messages], maxTokens: 2 });
      expect(ok.choices[0]!.message.role).toBe("assistant");
    } finally {
      await raising.dispose();
    }
  });

  it("a built-in template name formats without Jinja, and refuses tools", async () => {
    const named = await Llama.load({ modelPath: STORIES(), nCtx: 256, chatTemplate: "chatml" });
    const noJinja = await Llama.load({ modelPath: STORIES(), nCtx: 256, jinja: false });
    try {
      expect(named.formatChat(messages).prompt).toBe("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
      for (const llama of [named, noJinja]) {
        const err = await errorOf(() => llama.createChatCompletion({ messages, tools: [WEATHER] }));
        expect((err as LlamaError).code).toBe("INVALID_ARGUMENT");
      }
    } finally {
      await named.dispose();
      await noJinja.dispose();
    }
  });
});
