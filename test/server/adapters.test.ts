// LoRA adapters and speculative decoding through the server, as the official `openai` client and
// llama-server's own fields use them: adapters loaded at start, `lora: [{ id, scale }]` per request,
// GET/POST /lora-adapters, and the draft counts in usage.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { modelPath } from "../helpers.js";
import { writeLoraFixture } from "../lora-fixture.js";

const STORIES = () => modelPath("stories260K.gguf");
const PROMPT = "Once upon a time";

describe("the server with LoRA adapters and a draft", () => {
  let dir: string;
  let adapter: string;
  let llama: Llama;
  let reference: Llama;
  let server: OpenAIServer;
  let client: OpenAI;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "llama-napi-server-lora-"));
    adapter = join(dir, "a.gguf");
    await writeLoraFixture(adapter, { baseModelPath: STORIES(), seed: 0 });
    // Loaded at scale 0.5: requests that name no adapter get it at that scale.
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel: 2, lora: [{ path: adapter, scale: 0.5 }], draft: { type: "ngram", nDraft: 8, ngramSize: 2 } });
    reference = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    server = await startServer({ llama, port: 0, maxTokensCap: 200 });
    client = new OpenAI({ apiKey: "none", baseURL: server.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
    await reference?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const text = async (lora?: Array<{ path: string; scale?: number }>) =>
    (await reference.createCompletion(PROMPT, { maxTokens: 40, temperature: 0, lora })).choices[0]!.text;
  const served = async (extra: Record<string, unknown> = {}) =>
    await client.completions.create({ model: "m", prompt: PROMPT, max_tokens: 40, temperature: 0, ...extra } as never);

  it("a request's lora picks adapters by id and scale; absent, the start scales apply; listed none, the base model", async () => {
    expect((await served()).choices[0]!.text).toBe(await text([{ path: adapter, scale: 0.5 }]));
    expect((await served({ lora: [{ id: 0, scale: 1 }] })).choices[0]!.text).toBe(await text([{ path: adapter, scale: 1 }]));
    expect((await served({ lora: [] })).choices[0]!.text).toBe(await text([]));
    await expect(served({ lora: [{ id: 3, scale: 1 }] })).rejects.toMatchObject({ status: 400 });
    await expect(served({ lora: { id: 0 } })).rejects.toMatchObject({ status: 400 });
  });

  it("GET /lora-adapters lists them; POST sets the scales requests get by default", async () => {
    const root = server.url.replace(/\/v1$/, "");
    expect(await (await fetch(`${root}/lora-adapters`)).json()).toEqual([{ id: 0, path: adapter, scale: 0.5 }]);
    const posted = await fetch(`${root}/lora-adapters`, { method: "POST", body: JSON.stringify([{ id: 0, scale: 0 }]), headers: { "Content-Type": "application/json" } });
    expect(await posted.json()).toEqual([{ id: 0, path: adapter, scale: 0 }]);
    expect((await served()).choices[0]!.text).toBe(await text([]));
    expect((await fetch(`${root}/lora-adapters`, { method: "POST", body: JSON.stringify([{ id: 9, scale: 1 }]) })).status).toBe(400);
    expect((await fetch(`${root}/lora-adapters`, { method: "DELETE" })).status).toBe(405);
    await fetch(`${root}/lora-adapters`, { method: "POST", body: JSON.stringify([{ id: 0, scale: 0.5 }]) });
  });

  it("usage reports the draft's tokens; the chat route too", async () => {
    const res = await served({ prompt: `${PROMPT}, there was a girl. ${PROMPT}, there was a girl. ${PROMPT}`, max_tokens: 60 });
    const usage = res.usage as unknown as { draft_tokens: number; draft_accepted: number };
    expect(usage.draft_tokens).toBeGreaterThanOrEqual(usage.draft_accepted);
    expect(typeof usage.draft_accepted).toBe("number");
    const stream = await client.completions.create({ model: "m", prompt: PROMPT, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 30, draft_tokens: expect.any(Number), draft_accepted: expect.any(Number) });
    const chat = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: PROMPT }], max_tokens: 20, temperature: 0 });
    expect((chat.usage as unknown as { draft_tokens: number }).draft_tokens).toBeGreaterThanOrEqual(0);
  });
});
