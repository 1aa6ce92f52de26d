// Images through `llama-napi serve --mmproj`, as the official `openai` client sends them: the
// Llama's own answer, streamed or not; the modalities in /v1/models and /props; bad media as 400s
// naming the part; local files only under the media folder; a fuzz round with media parts.
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { fuzzServer } from "../../scripts/fuzz-server.mjs";
import { imageFile, projectorModel } from "../fixtures.js";
import { modelPath } from "../helpers.js";
import { json, raw } from "./raw-http.js";

const KEY = "test-key";

describe("serve --mmproj", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let client: OpenAI;
  let base: string;
  let image: Buffer;
  let folder: string;
  const messages = (url: string): OpenAI.ChatCompletionMessageParam[] => [{ role: "user", content: [{ type: "image_url", image_url: { url } }, { type: "text", text: "Once upon a time" }] }];

  beforeAll(async () => {
    const file = await imageFile(1);
    folder = file.slice(0, file.lastIndexOf("/"));
    image = readFileSync(file);
    llama = await Llama.load({ modelPath: modelPath("stories260K.gguf"), mmprojPath: await projectorModel("vision"), nCtx: 512, nThreads: 1, nParallel: 2, chatTemplate: "chatml", allowLocalMedia: folder });
    server = await startServer({ llama, port: 0, apiKey: KEY, maxBodyBytes: 8 << 20 });
    base = server.url.replace(/\/v1$/, "");
    client = new OpenAI({ apiKey: KEY, baseURL: server.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("answers an image from the openai client as the Llama does, streamed or not", async () => {
    const url = `data:image/png;base64,${image.toString("base64")}`;
    const own = await llama.createChatCompletion({ messages: messages(url) as never, maxTokens: 12, temperature: 0 });
    const reply = await client.chat.completions.create({ model: "x", messages: messages(url), max_tokens: 12, temperature: 0 });
    expect(reply.choices[0]!.message.content).toBe(own.choices[0]!.message.content);
    expect(reply.usage?.prompt_tokens).toBe(own.usage.prompt_tokens);
    let streamed = "";
    for await (const chunk of await client.chat.completions.create({ model: "x", messages: messages(url), max_tokens: 12, temperature: 0, stream: true })) {
      streamed += chunk.choices[0]?.delta.content ?? "";
    }
    expect(streamed).toBe(own.choices[0]!.message.content);
    // A local file by its name in the media folder, as llama-server's --media-path.
    const local = await client.chat.completions.create({ model: "x", messages: messages("file://image-1.png"), max_tokens: 12, temperature: 0 });
    expect(local.choices[0]!.message.content).toBe(own.choices[0]!.message.content);
  });

  it("takes input_image parts in the Responses API as the chat does", async () => {
    const url = `data:image/png;base64,${image.toString("base64")}`;
    const own = await llama.createChatCompletion({ messages: messages(url) as never, maxTokens: 12, temperature: 0 });
    const response = await client.responses.create({
      model: "x",
      input: [{ role: "user", content: [{ type: "input_image", image_url: url, detail: "auto" }, { type: "input_text", text: "Once upon a time" }] }],
      max_output_tokens: 12,
      temperature: 0,
    });
    expect(response.output_text).toBe(own.choices[0]!.message.content);
  });

  it("takes llama-server's multimodal prompt in /v1/completions", async () => {
    const own = await llama.createCompletion("<__media__>Once upon a time", { media: [image], maxTokens: 10, temperature: 0 });
    const res = await raw(base, "POST", "/v1/completions", {
      headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" },
      body: { prompt: { prompt_string: "<__media__>Once upon a time", multimodal_data: [image.toString("base64")] }, max_tokens: 10, temperature: 0 },
    });
    expect(res.status).toBe(200);
    expect((json(res).choices as Array<{ text: string }>)[0]!.text).toBe(own.choices[0]!.text);
    const bad = await raw(base, "POST", "/v1/completions", { headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" }, body: { prompt: { prompt_string: 5 } } });
    expect(bad.status).toBe(400);
  });

  it("reports what the model reads in /v1/models and /props", async () => {
    const models = await client.models.list();
    expect(models.data[0]).toMatchObject({ input_modalities: ["text", "image"], output_modalities: ["text"] });
    const props = json(await raw(base, "GET", "/props", { headers: { Authorization: `Bearer ${KEY}` } }));
    expect(props.modalities).toEqual({ vision: true, audio: false, video: false });
  });

  it("answers bad media with a 400 naming the part, and goes on", async () => {
    const post = (content: unknown) => raw(base, "POST", "/v1/chat/completions", { headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" }, body: { messages: [{ role: "user", content }], max_tokens: 2 } });
    for (const [part, pattern] of [
      [{ type: "image_url", image_url: { url: "https://example.com/cat.png" } }, /content\[0\] is a remote URL/],
      [{ type: "image_url", image_url: { url: "file:///etc/passwd" } }, /outside the folder/],
      [{ type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }, /^messages\[0\]\.content\[0\] is no image/],
      [{ type: "input_audio", input_audio: { data: "UklGRiQAAABXQVZFZm10IBAAAAABAAEA", format: "wav" } }, /^messages\[0\]\.content\[0\] is audio, but the projector takes no audio/],
      [{ type: "image_url" }, /image_url/],
    ] as const) {
      const res = await post([part, { type: "text", text: "hi" }]);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect((json(res).error as { message: string }).message).toMatch(pattern);
    }
    const ok = await client.chat.completions.create({ model: "x", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
    expect(ok.choices[0]!.finish_reason).toBe("length");
  });

  it("survives a round of the server fuzz with media parts", async () => {
    const { failures } = await fuzzServer(base, { ops: 200, seed: 22, key: KEY });
    expect(failures).toEqual([]);
  });
});
