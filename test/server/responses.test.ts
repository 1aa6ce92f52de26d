// The Responses API (POST /v1/responses) through the official `openai` package: the same reply as
// chat completions for the same conversation, whole and streamed (events in order, numbered), the
// token cap, a tool round, bad requests, and a client that goes away mid-stream.
import { request as httpRequest, type IncomingMessage } from "node:http";
import OpenAI from "openai";
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import type { FunctionTool, Response, ResponseInputItem, ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, type ChatTool } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { modelPath } from "../helpers.js";
import { TIME, WEATHER, templateSource } from "../completion/chat-tools.fixtures.js";
import { startToolServer } from "./tool-server.js";
import { raw, type RawResponse } from "./raw-http.js";

const KEY = "test-key";
// Token 2 is stories260K's end of story: banning it makes a generation run to its cap.
const NO_EOS = { "2": -100 };
const tools: FunctionTool[] = [WEATHER, TIME].map((t: ChatTool) => ({
  type: "function",
  name: t.function.name,
  description: t.function.description ?? null,
  parameters: t.function.parameters ?? null,
  strict: false,
}));

/** A response's output without its generated item ids. */
function withoutIds(output: Response["output"]): unknown[] {
  return output.map((item) => ({ ...item, id: "" }));
}

/** A raw POST of `body` (text) to `url`; the response body as text. */
function post(url: string, body: string, headers: Record<string, string> = { Authorization: `Bearer ${KEY}` }): Promise<RawResponse> {
  return raw(url, "POST", url, { headers: { "Content-Type": "application/json", ...headers }, body });
}

describe("the Responses API through the openai client", () => {
  let server: OpenAIServer;
  let client: OpenAI;
  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    ({ server, client, stop } = await startToolServer(KEY));
  });
  afterAll(() => stop?.());

  it("a whole response: chat's reply for the same message, as a message item, with usage in input/output tokens", async () => {
    const res = await client.responses.create({ model: "m", input: "Tell me about Lily.", max_output_tokens: 12, temperature: 0 });
    const chat = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Tell me about Lily." }], max_tokens: 12, temperature: 0 });
    expect(res.id).toMatch(/^resp_[0-9a-f]{32}$/);
    expect(res.object).toBe("response");
    expect(res.model).toBe("stories260K");
    expect(Math.abs(res.created_at - Date.now() / 1000)).toBeLessThan(60);
    expect(res.output_text).toBe(chat.choices[0]!.message.content);
    expect(res.output_text.length).toBeGreaterThan(0);
    expect(res.output).toHaveLength(1);
    expect(res.output[0]).toMatchObject({ type: "message", role: "assistant", id: expect.stringMatching(/^msg_/), content: [{ type: "output_text", text: res.output_text, annotations: [] }] });
    const ended = chat.choices[0]!.finish_reason === "length" ? "incomplete" : "completed";
    expect(res.status).toBe(ended);
    expect(res.usage).toEqual({
      input_tokens: chat.usage!.prompt_tokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: chat.usage!.completion_tokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: chat.usage!.total_tokens,
    });
    expect(res).toMatchObject({ max_output_tokens: 12, temperature: 0, top_p: null, tools: [], tool_choice: "auto", error: null, store: false });
  });

  it("instructions and message items are the chat's system message and conversation", async () => {
    const input: ResponseInputItem[] = [
      { role: "user", content: [{ type: "input_text", text: "Hello" }, { type: "input_text", text: " there" }] },
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "Hi. I tell stories.", annotations: [] }], id: "msg_1", status: "completed" },
      { role: "developer", content: "Be brief." },
      { role: "user", content: "Tell me a story." },
    ];
    const res = await client.responses.create({ model: "m", instructions: "You tell stories.", input, max_output_tokens: 10, temperature: 0 });
    const messages: ChatCompletionMessageParam[] = [
      { role: "system", content: "You tell stories." },
      { role: "user", content: "Hello there" },
      { role: "assistant", content: "Hi. I tell stories." },
      { role: "system", content: "Be brief." },
      { role: "user", content: "Tell me a story." },
    ];
    const chat = await client.chat.completions.create({ model: "m", messages, max_tokens: 10, temperature: 0 });
    expect(res.output_text).toBe(chat.choices[0]!.message.content);
    expect(res.usage!.input_tokens).toBe(chat.usage!.prompt_tokens);
    expect(res.instructions).toBe("You tell stories.");
    // Longer instructions, a longer prompt: they were not dropped.
    const longer = await client.responses.create({ model: "m", instructions: "You tell stories about cats and dogs.", input, max_output_tokens: 1, temperature: 0 });
    expect(longer.usage!.input_tokens).toBeGreaterThan(res.usage!.input_tokens);
  });

  it("text.format is chat's response_format: the output follows the schema", async () => {
    const schema = { type: "object", properties: { city: { type: "string", enum: ["Paris", "Tokyo"] } }, required: ["city"], additionalProperties: false };
    const res = await client.responses.create({ model: "m", input: "Pick a city.", text: { format: { type: "json_schema", name: "city", schema, strict: true } }, max_output_tokens: 40, temperature: 0 });
    const chat = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "Pick a city." }],
      response_format: { type: "json_schema", json_schema: { name: "city", schema, strict: true } },
      max_tokens: 40,
      temperature: 0,
    });
    expect(JSON.parse(res.output_text)).toEqual({ city: expect.stringMatching(/^(Paris|Tokyo)$/) });
    expect(res.output_text).toBe(chat.choices[0]!.message.content);
    expect(res.text).toMatchObject({ format: { type: "json_schema", name: "city" } });
  });

  it("streamed: the events in order, numbered from 0, their deltas the whole response's text and usage", async () => {
    const body = { model: "m", input: "Tell me about Lily.", max_output_tokens: 12, temperature: 0 };
    const whole = await client.responses.create(body);
    const events: ResponseStreamEvent[] = [];
    for await (const event of await client.responses.create({ ...body, stream: true })) events.push(event);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const types = events.map((e) => e.type);
    const deltas = events.filter((e) => e.type === "response.output_text.delta");
    expect(deltas.length).toBeGreaterThan(1);
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      ...deltas.map(() => "response.output_text.delta"),
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      whole.status === "completed" ? "response.completed" : "response.incomplete",
    ]);
    const created = events[0]!;
    if (created.type !== "response.created") throw new Error("no response.created");
    expect(created.response).toMatchObject({ status: "in_progress", output: [], usage: null });
    const text = deltas.map((e) => (e.type === "response.output_text.delta" ? e.delta : "")).join("");
    expect(text).toBe(whole.output_text);
    const itemId = (events[2] as { item: { id: string } }).item.id;
    expect(deltas.every((e) => e.type === "response.output_text.delta" && e.item_id === itemId && e.output_index === 0 && e.content_index === 0)).toBe(true);
    expect(events.at(-4)).toMatchObject({ type: "response.output_text.done", text, item_id: itemId });
    const last = events.at(-1)!;
    if (last.type !== "response.completed" && last.type !== "response.incomplete") throw new Error(`ends with ${last.type}`);
    expect(last.response.id).toBe(created.response.id);
    expect(last.response.status).toBe(whole.status);
    expect(last.response.usage).toEqual(whole.usage);
    expect(withoutIds(last.response.output)).toEqual(withoutIds(whole.output));
    expect(last.response.output[0]!.id).toBe(itemId);

    // The client's own stream helper assembles the same response from the events.
    const assembled = await client.responses.stream(body).finalResponse();
    expect(assembled.output_text).toBe(whole.output_text);
    expect(assembled.usage).toEqual(whole.usage);
  });

  it("max_output_tokens stops the reply: status incomplete, whole and streamed", async () => {
    const body = { model: "m", input: "Tell me about Lily.", max_output_tokens: 5, temperature: 0, logit_bias: NO_EOS } as OpenAI.Responses.ResponseCreateParamsNonStreaming;
    const res = await client.responses.create(body);
    expect(res.status).toBe("incomplete");
    expect(res.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(res.usage!.output_tokens).toBe(5);
    expect(res.output[0]).toMatchObject({ status: "incomplete" });
    const events: ResponseStreamEvent[] = [];
    for await (const event of await client.responses.create({ ...body, stream: true })) events.push(event);
    const last = events.at(-1)!;
    if (last.type !== "response.incomplete") throw new Error(`ends with ${last.type}`);
    expect(last.response.incomplete_details).toEqual({ reason: "max_output_tokens" });
    expect(last.response.usage).toEqual(res.usage);
    expect(events.find((e) => e.type === "response.output_item.done")).toMatchObject({ item: { status: "incomplete" } });
  });

  it("a tool round: a function_call item, then the answer to its function_call_output, as chat gives them", async () => {
    const question = "What is the weather in Tokyo?";
    const first = await client.responses.create({ model: "m", input: question, tools, tool_choice: "required", temperature: 0 });
    expect(first.status).toBe("completed");
    const calls = first.output.filter((item) => item.type === "function_call");
    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    if (call.type !== "function_call") throw new Error("not a function call");
    expect(call.id).toMatch(/^fc_/);
    expect(call.call_id.length).toBeGreaterThan(0);
    expect(["get_weather", "get_time"]).toContain(call.name);
    expect(typeof JSON.parse(call.arguments)).toBe("object");
    // The chat route makes the same call.
    const chatTools = [WEATHER, TIME] as OpenAI.Chat.ChatCompletionTool[];
    const chat = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: question }], tools: chatTools, tool_choice: "required", temperature: 0 });
    const chatCall = chat.choices[0]!.message.tool_calls![0]!;
    if (chatCall.type !== "function") throw new Error("not a function call");
    expect({ name: call.name, arguments: call.arguments }).toEqual({ name: chatCall.function.name, arguments: chatCall.function.arguments });
    expect(first.usage!.output_tokens).toBe(chat.usage!.completion_tokens);

    // The second round sends the output back with the function's result.
    const input: ResponseInputItem[] = [{ role: "user", content: question }, ...(first.output as ResponseInputItem[]), { type: "function_call_output", call_id: call.call_id, output: '{"temperature": 12}' }];
    const second = await client.responses.create({ model: "m", input, tools, tool_choice: "none", max_output_tokens: 12, temperature: 0 });
    expect(second.output.map((item) => item.type)).toEqual(["message"]);
    const messages: ChatCompletionMessageParam[] = [
      { role: "user", content: question },
      { role: "assistant", content: null, tool_calls: [{ id: call.call_id, type: "function", function: { name: call.name, arguments: call.arguments } }] },
      { role: "tool", tool_call_id: call.call_id, content: '{"temperature": 12}' },
    ];
    const chatSecond = await client.chat.completions.create({ model: "m", messages, tools: chatTools, tool_choice: "none", max_tokens: 12, temperature: 0 });
    expect(second.output_text).toBe(chatSecond.choices[0]!.message.content);
    expect(second.usage!.input_tokens).toBe(chatSecond.usage!.prompt_tokens);
  });

  it("a streamed function call: its item, argument deltas and done events, and the client's assembled response", async () => {
    const body = { model: "m", input: "What time is it in UTC?", tools, tool_choice: { type: "function" as const, name: "get_time" }, temperature: 0 };
    const events: ResponseStreamEvent[] = [];
    for await (const event of await client.responses.create({ ...body, stream: true })) events.push(event);
    const added = events.find((e) => e.type === "response.output_item.added");
    if (added?.type !== "response.output_item.added" || added.item.type !== "function_call") throw new Error("no function_call item added");
    expect(added.item).toMatchObject({ name: "get_time", status: "in_progress" });
    const args = events
      .filter((e) => e.type === "response.function_call_arguments.delta")
      .map((e) => (e.type === "response.function_call_arguments.delta" ? e.delta : ""))
      .join("");
    expect(JSON.parse(args)).toMatchObject({ zone: expect.stringMatching(/^(UTC|CET)$/) });
    expect(events.find((e) => e.type === "response.function_call_arguments.done")).toMatchObject({ name: "get_time", arguments: args, item_id: added.item.id });
    const last = events.at(-1)!;
    if (last.type !== "response.completed") throw new Error(`ends with ${last.type}`);
    expect(last.response.output).toEqual([{ ...added.item, status: "completed", arguments: args }]);
    const whole = await client.responses.create(body);
    expect(withoutIds(whole.output)).toEqual(withoutIds(last.response.output).map((item) => ({ ...(item as object), call_id: expect.any(String) })));
    const assembled = await client.responses.stream(body).finalResponse();
    const item = assembled.output[0]!;
    expect(item.type === "function_call" && item.arguments).toBe(args);
  });

  it("bad requests are 400s naming the field; the server goes on", async () => {
    const cases: Array<[Record<string, unknown>, string, string?]> = [
      [{}, "input", "missing_required_parameter"],
      [{ input: 5 }, "input"],
      [{ input: [] }, "input"],
      [{ input: ["hi"] }, "input[0]"],
      [{ input: [{ role: "robot", content: "hi" }] }, "input[0].role"],
      [{ input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }, "input[0].content[0].type", "unsupported"],
      // An image to a model without a projector.
      [{ input: [{ role: "user", content: [{ type: "input_image", image_url: "data:image/png;base64,iVBORw0KGgo=" }] }] }, "messages", "invalid_media"],
      [{ input: [{ role: "user", content: 7 }] }, "input[0].content"],
      [{ input: [{ type: "item_reference", id: "x" }] }, "input[0].type", "unsupported"],
      [{ input: [{ type: "function_call_output", call_id: "nope", output: "1" }] }, "input[0].call_id"],
      [{ input: [{ type: "function_call", call_id: "c", name: "f", arguments: {} }] }, "input[0].arguments"],
      [{ input: "hi", instructions: 3 }, "instructions"],
      [{ input: "hi", previous_response_id: "resp_1" }, "previous_response_id", "unsupported"],
      [{ input: "hi", background: true }, "background", "unsupported"],
      [{ input: "hi", tools: [{ type: "web_search" }] }, "tools[0].type", "unsupported"],
      [{ input: "hi", tools: [{ type: "function", name: "bad name" }] }, "tools[0].name"],
      [{ input: "hi", tools, tool_choice: { type: "function", name: "nope" } }, "tool_choice"],
      [{ input: "hi", tool_choice: "required" }, "tool_choice"],
      [{ input: "hi", max_output_tokens: 0 }, "max_output_tokens"],
      [{ input: "hi", max_output_tokens: 301 }, "max_output_tokens"],
      [{ input: "hi", max_tokens: 5 }, "max_tokens", "unsupported"],
      [{ input: "hi", temperature: "hot" }, "temperature"],
      [{ input: "hi", top_p: 2 }, "top_p"],
      [{ input: "hi", stream: "yes" }, "stream"],
      [{ input: "hi", text: { format: { type: "xml" } } }, "text.format.type"],
      [{ input: "hi", reasoning: { effort: "high" } }, "reasoning", "unsupported"],
    ];
    for (const [fields, param, code] of cases) {
      const error = await client.responses.create({ model: "m", ...fields } as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming).catch((err: unknown) => err);
      expect(error, JSON.stringify(fields)).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error, JSON.stringify(fields)).toMatchObject({ status: 400, param, type: "invalid_request_error", ...(code ? { code } : {}) });
    }
    // Settings left at their "off" values are accepted.
    const ok = await client.responses.create({ model: "m", input: "hi", max_output_tokens: 2, include: [], truncation: "disabled", background: false, store: false, reasoning: {}, metadata: { a: "b" } });
    expect(ok.object).toBe("response");
    expect(ok.metadata).toEqual({ a: "b" });
  });

  it("raw HTTP: OpenAI's error object, /responses without /v1, named events and no [DONE]", async () => {
    const base = server.url.replace(/\/v1$/, "");
    for (const body of ["{bad", "[1]", '{"input": {"role": "user"}}']) {
      const res = await post(`${base}/v1/responses`, body);
      expect(res.status, body).toBe(400);
      expect(JSON.parse(res.body).error).toMatchObject({ type: "invalid_request_error", message: expect.any(String) });
    }
    expect(JSON.parse((await post(`${base}/v1/responses`, '{"input": [{"role": "tool", "content": "x"}]}')).body).error).toMatchObject({ param: "input[0].role" });
    expect((await post(`${base}/responses`, JSON.stringify({ input: "hi", max_output_tokens: 1 }), {})).status).toBe(401);
    const plain = await post(`${base}/responses`, JSON.stringify({ input: "hi", max_output_tokens: 2 }));
    expect(plain.status).toBe(200);
    expect(JSON.parse(plain.body)).toMatchObject({ object: "response", usage: { output_tokens: expect.any(Number) } });

    const streamed = await post(`${base}/v1/responses`, JSON.stringify({ input: "hi", max_output_tokens: 3, stream: true }));
    expect(streamed.headers["content-type"]).toMatch(/^text\/event-stream/);
    const blocks = streamed.body.split("\n\n").filter((b) => b !== "");
    expect(blocks.length).toBeGreaterThan(5);
    for (const block of blocks) {
      const [event, data] = block.split("\n");
      expect(data).toMatch(/^data: \{/);
      expect(event).toBe(`event: ${JSON.parse(data!.slice("data: ".length)).type}`);
    }
    expect(streamed.body).not.toContain("[DONE]");
  });
});

describe("a reasoning template's thinking as a reasoning item", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let client: OpenAI;

  beforeAll(async () => {
    // DeepSeek R1's prompt opens the thinking, which the tiny model never closes.
    llama = await Llama.load({ modelPath: modelPath("stories260K.gguf"), chatTemplate: templateSource("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"), nCtx: 1024, nThreads: 2 });
    server = await startServer({ llama, port: 0 });
    client = new OpenAI({ apiKey: "none", baseURL: server.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("whole and streamed: chat's reasoning_content, then the (empty) message", async () => {
    const body = { model: "m", input: "Hi", max_output_tokens: 10, temperature: 0, logit_bias: NO_EOS } as OpenAI.Responses.ResponseCreateParamsNonStreaming;
    const res = await client.responses.create(body);
    const chat = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hi" }], max_tokens: 10, temperature: 0, logit_bias: NO_EOS });
    const reasoning = (chat.choices[0]!.message as { reasoning_content?: string }).reasoning_content;
    expect(reasoning).toBeTruthy();
    expect(res.output.map((item) => [item.type, "status" in item ? item.status : undefined])).toEqual([
      ["reasoning", "completed"],
      ["message", "incomplete"],
    ]);
    expect(res.output[0]).toMatchObject({ id: expect.stringMatching(/^rs_/), summary: [], content: [{ type: "reasoning_text", text: reasoning }] });
    expect(res.output_text).toBe("");

    const events: ResponseStreamEvent[] = [];
    for await (const event of await client.responses.create({ ...body, stream: true })) events.push(event);
    const deltas = events.filter((e) => e.type === "response.reasoning_text.delta");
    expect(deltas.map((e) => (e.type === "response.reasoning_text.delta" ? e.delta : "")).join("")).toBe(reasoning);
    expect(events.map((e) => e.type).filter((t) => t !== "response.reasoning_text.delta")).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.reasoning_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.incomplete",
    ]);
    const last = events.at(-1)!;
    if (last.type !== "response.incomplete") throw new Error(`ends with ${last.type}`);
    expect(withoutIds(last.response.output)).toEqual(withoutIds(res.output));
    expect(last.response.usage).toEqual(res.usage);
  });
});

describe("Responses streams cut short, with --parallel 1", () => {
  let llama: Llama;
  let server: OpenAIServer;

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: modelPath("stories260K.gguf"), nCtx: 2048, nThreads: 1, nParallel: 1 });
    server = await startServer({ llama, port: 0, apiKey: KEY });
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("a client that goes away mid-stream frees its sequence at once", async () => {
    const tokensBefore = llama.stats.tokens;
    const { origin } = new URL(server.url);
    const body = JSON.stringify({ input: "Once upon a time", max_output_tokens: 1500, logit_bias: NO_EOS, stream: true });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${origin}/v1/responses`, { method: "POST", headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" }, agent: false }, resolve);
      req.on("error", reject);
      req.end(body);
    });
    res.setEncoding("utf8");
    // Wait for the first text, so that the request holds the sequence, then hang up.
    let received = "";
    await new Promise<void>((resolve) =>
      res.on("data", (chunk: string) => {
        received += chunk;
        if (received.includes("response.output_text.delta")) resolve();
      }),
    );
    res.destroy();
    // With one sequence, this can only run once the abandoned stream has let go of it.
    const next = await post(`${origin}/v1/responses`, JSON.stringify({ input: "Lily", max_output_tokens: 5, temperature: 0, logit_bias: NO_EOS }));
    expect(next.status).toBe(200);
    expect(JSON.parse(next.body).usage.output_tokens).toBe(5);
    const deadline = Date.now() + 10_000;
    while (server.pending > 0 || llama.active > 0 || llama.queued > 0) {
      if (Date.now() > deadline) throw new Error("the server did not settle");
      await new Promise((r) => setTimeout(r, 10));
    }
    // The abandoned stream stopped far short of its 1500 tokens.
    expect(llama.stats.tokens - tokensBefore).toBeLessThan(500);
  });

  it("a stream cut by shutdown ends with an error event, numbered after the rest", async () => {
    const { origin } = new URL(server.url);
    const body = JSON.stringify({ input: "Once upon a time", max_output_tokens: 1500, logit_bias: NO_EOS, stream: true });
    let received = "";
    let firstText!: () => void;
    const started = new Promise<void>((resolve) => (firstText = resolve));
    const ended = new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${origin}/v1/responses`, { method: "POST", headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" }, agent: false }, (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          received += chunk;
          if (received.includes("response.output_text.delta")) firstText();
        });
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end(body);
    });
    await started;
    await server.close(0);
    await ended;
    const events = received
      .split("\n\n")
      .filter((b) => b !== "")
      .map((b) => JSON.parse(b.split("\n")[1]!.slice("data: ".length)) as { type: string; sequence_number: number });
    expect(events.at(-1)).toMatchObject({ type: "error", code: "shutting_down", message: expect.any(String), param: null });
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events.some((e) => e.type === "response.completed" || e.type === "response.incomplete")).toBe(false);
  });
});
