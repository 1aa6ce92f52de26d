// Tool calls through the OpenAI-compatible server, as the official `openai` package sends and reads
// them: whole and streamed, over two rounds (call, tool result, answer).
import OpenAI from "openai";
import type { ChatCompletionMessageParam, ChatCompletionTool } from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TIME, WEATHER } from "../completion/chat-tools.fixtures.js";
import { startToolServer } from "./tool-server.js";

const KEY = "test-key";
const tools = [WEATHER, TIME] as ChatCompletionTool[];

describe("tool calls through the server and the openai client", () => {
  let client: OpenAI;
  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ client, stop } = await startToolServer(KEY));
  });
  afterAll(() => stop?.());

  it("a two-round loop, whole: message.tool_calls, then the answer to the tool's result", async () => {
    const messages: ChatCompletionMessageParam[] = [{ role: "user", content: "What is the weather in Tokyo?" }];
    const first = await client.chat.completions.create({ model: "m", messages, tools, tool_choice: "required", temperature: 0 });
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    const call = choice.message.tool_calls![0]!;
    expect(call.type).toBe("function");
    if (call.type !== "function") throw new Error("not a function call");
    expect(["get_weather", "get_time"]).toContain(call.function.name);
    expect(typeof JSON.parse(call.function.arguments)).toBe("object");
    messages.push(choice.message, { role: "tool", tool_call_id: call.id, content: '{"temperature": 12}' });
    const second = await client.chat.completions.create({ model: "m", messages, tools, tool_choice: "none", temperature: 0, max_tokens: 12 });
    expect(second.choices[0]!.message.tool_calls ?? []).toEqual([]);
    expect(typeof second.choices[0]!.message.content).toBe("string");
  });

  it("a two-round loop, streamed: the client's tool-call events, then the answer", async () => {
    const messages: ChatCompletionMessageParam[] = [{ role: "user", content: "What time is it in UTC?" }];
    const done: Array<{ name: string; arguments: string }> = [];
    const stream = client.chat.completions
      .stream({ model: "m", messages, tools, tool_choice: { type: "function", function: { name: "get_time" } }, temperature: 0, stream_options: { include_usage: true } })
      .on("tool_calls.function.arguments.done", (event) => done.push({ name: event.name, arguments: event.arguments }));
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("not a function call");
    expect(call.function.name).toBe("get_time");
    expect(done).toEqual([{ name: "get_time", arguments: call.function.arguments }]);
    expect(JSON.parse(call.function.arguments)).toMatchObject({ zone: expect.stringMatching(/^(UTC|CET)$/) });
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
    expect(final.usage?.completion_tokens).toBeGreaterThan(0);

    messages.push(final.choices[0]!.message, { role: "tool", tool_call_id: call.id, content: "12:00" });
    const answer = await client.chat.completions.stream({ model: "m", messages, tools, temperature: 0, max_tokens: 8 }).finalChatCompletion();
    expect(typeof answer.choices[0]!.message.content).toBe("string");
  });

  it("bad tools are 400s naming the problem; the server goes on", async () => {
    const bad = client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      tools: [{ type: "function", function: { parameters: {} } } as unknown as ChatCompletionTool],
    });
    await expect(bad).rejects.toMatchObject({ status: 400 });
    const missing = client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      tools,
      tool_choice: { type: "function", function: { name: "nope" } },
    });
    await expect(missing).rejects.toMatchObject({ status: 400, message: expect.stringContaining("nope") });
    const ok = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }], max_tokens: 2 });
    expect(ok.choices[0]!.message.role).toBe("assistant");
  });
});
