// Images and audio through llama.cpp's mtmd, on stories260K with synthesized projectors: greedy
// text token for token as llama-mtmd-cli and llama-server (built from the vendored source, run
// here) give it, media token counts as mtmd's, a cached image not encoded again, and bad media as
// typed errors that leave the model usable.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama, LlamaError, LlamaModel } from "../../lib/index.js";
import { LlamaProjector } from "../../lib/core/projector.js";
import { hugePng, truncatedPng } from "../../lib/tools/synth-media.js";
import { synthesizeProjector, VISION_IMAGE_TOKENS } from "../../lib/tools/synth-mmproj.js";
import { imageFile, projectorModel, soundFile } from "../fixtures.js";
import { drain, llamaCppDir, modelPath } from "../helpers.js";
import { startLlamaServer } from "../llama-server.js";
import { mtmdCliGreedy } from "../mtmd-cli.js";

const STORIES = () => modelPath("stories260K.gguf");
const PROMPT = "Once upon a time";
const N = 16;
/** The prompt llama-mtmd-cli formats with --chat-template chatml: the media before the user's text. */
const chatml = (text: string) => `<|im_start|>user\n<__media__>${text}<|im_end|>\n<|im_start|>assistant\n`;
const dataUrl = (bytes: Buffer, type = "image/png") => `data:${type};base64,${bytes.toString("base64")}`;
const imagePart = (bytes: Buffer) => ({ type: "image_url" as const, image_url: { url: dataUrl(bytes) } });

let vision: string;
let audio: string;
let images: Buffer[];
let llm: Llama;

beforeAll(async () => {
  [vision, audio] = [await projectorModel("vision"), await projectorModel("audio")];
  images = [readFileSync(await imageFile(1)), readFileSync(await imageFile(2))];
  llm = await Llama.load({ modelPath: STORIES(), mmprojPath: vision, nCtx: 512, nThreads: 1, nParallel: 2, chatTemplate: "chatml" });
});
afterAll(async () => {
  await llm?.dispose();
});

const greedy = async (target: Llama, prompt: string, media: Buffer[]) =>
  (await target.createCompletion(prompt, { media, maxTokens: N, temperature: 0 })).choices[0]!.text;

describe("media as llama.cpp reads them", () => {
  it("an image gives llama-mtmd-cli's greedy text token for token, and mtmd's image token count", async () => {
    const texts: string[] = [];
    for (const seed of [1, 2]) {
      const image = await imageFile(seed);
      const reference = mtmdCliGreedy({ model: STORIES(), mmproj: vision, image, prompt: PROMPT, nPredict: N, chatTemplate: "chatml" });
      expect(reference.imageTokens).toBe(VISION_IMAGE_TOKENS);
      const text = await greedy(llm, chatml(PROMPT), [readFileSync(image)]);
      expect(text).toBe(reference.text);
      texts.push(text);
    }
    // Two images, two texts: the image reaches the model.
    expect(texts[0]).not.toBe(texts[1]);
    const projector = await LlamaProjector.load(llm.model, vision, { nThreads: 1 });
    try {
      const prompt = await projector.tokenize(chatml(PROMPT), [images[0]!]);
      expect(prompt.media.map((m) => [m.nTokens, m.audio])).toEqual([[VISION_IMAGE_TOKENS, false]]);
      expect(Array.from(prompt.tokens.subarray(prompt.media[0]!.start, prompt.media[0]!.start + VISION_IMAGE_TOKENS)).every((t) => t < 0)).toBe(true);
      prompt.dispose();
    } finally {
      projector.dispose();
    }
  });

  it("a sound gives llama-mtmd-cli's greedy text through an audio projector", async () => {
    const sound = await soundFile(1);
    const reference = mtmdCliGreedy({ model: STORIES(), mmproj: audio, audio: sound, prompt: PROMPT, nPredict: N, chatTemplate: "chatml" });
    const listener = await Llama.load({ modelPath: STORIES(), mmprojPath: audio, nCtx: 512, nThreads: 1 });
    try {
      expect(listener.capabilities).toEqual({ vision: false, audio: true });
      const reply = await listener.createChatCompletion({
        messages: [{ role: "user", content: [{ type: "input_audio", input_audio: { data: readFileSync(sound).toString("base64"), format: "wav" } }, { type: "text", text: PROMPT }] }],
        maxTokens: N,
        temperature: 0,
      });
      expect(await greedy(listener, chatml(PROMPT), [readFileSync(sound)])).toBe(reference.text);
      expect(reply.usage.prompt_tokens).toBeGreaterThan(reference.imageTokens);
      await expect(greedy(listener, chatml(PROMPT), [images[0]!])).rejects.toMatchObject({ code: "INVALID_MEDIA", message: expect.stringContaining("takes no images") });
    } finally {
      await listener.dispose();
    }
  });

  it.each([
    ["the built-in chatml", undefined],
    ["Qwen2.5's Jinja template", "Qwen-Qwen2.5-7B-Instruct.jinja"],
  ])("a chat with an image answers as llama-server --mmproj does, streamed or not (%s)", async (_name, templateFile) => {
    const file = templateFile === undefined ? undefined : join(llamaCppDir(), "models", "templates", templateFile);
    const server = await startLlamaServer(STORIES(), ["--mmproj", vision, "-c", "512", "-fa", "off", ...(file ? ["--chat-template-file", file] : ["--chat-template", "chatml"])]);
    const ours = file === undefined ? llm : await Llama.load({ modelPath: STORIES(), mmprojPath: vision, nCtx: 512, nThreads: 1, chatTemplate: readFileSync(file, "utf8") });
    try {
      // Text parts around an image join without newlines, as llama.cpp's common/chat joins them.
      const messages = [{ role: "user" as const, content: [{ type: "text" as const, text: "Look:" }, imagePart(images[1]!), { type: "text" as const, text: PROMPT }] }];
      const reference = (await server.post("/v1/chat/completions", { messages, max_tokens: N, temperature: 0 })) as { choices: Array<{ message: { content: string } }>; usage: { prompt_tokens: number } };
      const reply = await ours.createChatCompletion({ messages, maxTokens: N, temperature: 0 });
      expect(reply.choices[0]!.message.content).toBe(reference.choices[0]!.message.content);
      expect(reply.usage.prompt_tokens).toBe(reference.usage.prompt_tokens);
      const chunks = await drain(ours.createChatCompletion({ messages, maxTokens: N, temperature: 0, stream: true }));
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(reference.choices[0]!.message.content);
    } finally {
      await server.stop();
      if (ours !== llm) await ours.dispose();
    }
  });
});

describe("media with the rest of the API", () => {
  it("a grammar, logprobs and tools work with an image in the prompt", async () => {
    const grammar = 'root ::= "yes" | "no"';
    const constrained = await llm.createCompletion(chatml(PROMPT), { media: [images[0]!], grammar, maxTokens: 4, temperature: 0, logprobs: 2 });
    expect(["yes", "no"]).toContain(constrained.choices[0]!.text);
    expect(constrained.choices[0]!.logprobs?.tokens.length).toBeGreaterThan(0);
    const template = readFileSync(join(llamaCppDir(), "models", "templates", "Qwen-Qwen2.5-7B-Instruct.jinja"), "utf8");
    const tooled = await Llama.load({ modelPath: STORIES(), mmprojPath: vision, nCtx: 1024, nThreads: 1, chatTemplate: template });
    try {
      const tools = [{ type: "function" as const, function: { name: "describe", parameters: { type: "object", properties: { color: { type: "string", enum: ["red", "blue"] } }, required: ["color"] } } }];
      const reply = await tooled.createChatCompletion({
        messages: [{ role: "user", content: [imagePart(images[0]!), { type: "text", text: "What color?" }] }],
        tools,
        toolChoice: "required",
        maxTokens: 256,
        temperature: 0,
      });
      const call = reply.choices[0]!.message.tool_calls?.[0];
      expect(call?.function.name).toBe("describe");
      expect(["red", "blue"]).toContain((JSON.parse(call!.function.arguments) as { color: string }).color);
    } finally {
      await tooled.dispose();
    }
  });
});

describe("media in the cache", () => {
  it("a second question about the same image does not encode it again", async () => {
    const first = [{ role: "user" as const, content: [imagePart(images[0]!), { type: "text" as const, text: PROMPT }] }];
    const reply = await llm.createChatCompletion({ messages: first, maxTokens: 8, temperature: 0 });
    const encoded = llm.stats.mediaChunks;
    const again = [...first, { role: "assistant" as const, content: reply.choices[0]!.message.content }, { role: "user" as const, content: "And then?" }];
    const second = await llm.createChatCompletion({ messages: again, maxTokens: 8, temperature: 0 });
    expect(llm.stats.mediaChunks).toBe(encoded);
    // Its usage still counts the image's tokens.
    expect(second.usage.prompt_tokens).toBeGreaterThan(reply.usage.prompt_tokens + VISION_IMAGE_TOKENS);
    // Another image is encoded.
    await llm.createChatCompletion({ messages: [{ role: "user", content: [imagePart(images[1]!), { type: "text", text: PROMPT }] }], maxTokens: 4, temperature: 0 });
    expect(llm.stats.mediaChunks).toBeGreaterThan(encoded);
  });

  it("two requests with different images run at once on two sequences, each with its own text", async () => {
    const alone = await Promise.all(images.map(async (image) => greedy(llm, chatml(PROMPT), [image])));
    const together = await Promise.all(images.map((image) => greedy(llm, chatml(PROMPT), [image])));
    expect(together).toEqual(alone);
  });
});

describe("bad media", () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(join(tmpdir(), "llama-napi-media-"));
    writeFileSync(join(folder, "inside.png"), images[0]!);
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it("is a typed error each time, and the model goes on", async () => {
    const expectMedia = (run: Promise<unknown>, pattern: RegExp) => expect(run).rejects.toMatchObject({ code: "INVALID_MEDIA", message: expect.stringMatching(pattern) });
    await expectMedia(greedy(llm, chatml(PROMPT), [truncatedPng(images[0]!)]), /options\.media\[0\]|media\[0\]/);
    await expectMedia(greedy(llm, chatml(PROMPT), [hugePng()]), /20000×20000/);
    await expectMedia(greedy(llm, chatml(PROMPT), [Buffer.from("RIFF\0\0\0\0WEBPVP8 ")]), /WebP/);
    await expectMedia(greedy(llm, chatml(PROMPT), [Buffer.from("not an image at all")]), /no image/);
    const chat = (url: string) => llm.createChatCompletion({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }, { type: "text", text: "x" }] }], maxTokens: 2 });
    await expectMedia(chat("https://example.com/cat.png"), /messages\[0\]\.content\[0\] is a remote URL/);
    await expectMedia(chat(`file://${join(folder, "inside.png")}`), /local files are not allowed/);
    await expect(llm.createCompletion(chatml(PROMPT), { media: [images[0]!, images[1]!] })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(llm.createCompletion("<__media__>", { media: [images[0]!] })).rejects.toMatchObject({ code: "INVALID_ARGUMENT", message: expect.stringContaining("end with text") });
    await expect(llm.createChatCompletion({ messages: [{ role: "user", content: [{ type: "video_url", video_url: {} } as never] }] })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    // Still usable, and still right.
    expect(await greedy(llm, chatml(PROMPT), [images[0]!])).toBe(await greedy(llm, chatml(PROMPT), [images[0]!]));
  });

  it("local files come only from the allowed folder, remote ones only through fetchMedia", async () => {
    const fetched: string[] = [];
    const local = await Llama.load({
      modelPath: STORIES(),
      mmprojPath: vision,
      nCtx: 256,
      nThreads: 1,
      allowLocalMedia: folder,
      fetchMedia: async (url) => (fetched.push(url), images[0]!),
    });
    try {
      const chat = (url: string) => local.createChatCompletion({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }, { type: "text", text: PROMPT }] }], maxTokens: 4, temperature: 0 });
      const viaData = (await chat(dataUrl(images[0]!))).choices[0]!.message.content;
      expect((await chat("file://inside.png")).choices[0]!.message.content).toBe(viaData);
      expect((await chat(join(folder, "inside.png"))).choices[0]!.message.content).toBe(viaData);
      expect((await chat("https://example.com/cat.png")).choices[0]!.message.content).toBe(viaData);
      expect(fetched).toEqual(["https://example.com/cat.png"]);
      await expect(chat("file://../../etc/passwd")).rejects.toMatchObject({ code: "INVALID_MEDIA", message: expect.stringMatching(/outside the folder|no such file/) });
      await expect(chat(modelPath("stories260K.gguf"))).rejects.toMatchObject({ code: "INVALID_MEDIA", message: expect.stringContaining("outside the folder") });
    } finally {
      await local.dispose();
    }
  });

  it("no projector, or one that does not fit the model, is a typed error", async () => {
    const plain = await Llama.load({ modelPath: STORIES(), nCtx: 128, nThreads: 1 });
    try {
      expect(plain.capabilities).toEqual({ vision: false, audio: false });
      await expect(greedy(plain, chatml(PROMPT), [images[0]!])).rejects.toMatchObject({ code: "INVALID_MEDIA", message: expect.stringContaining("no projector") });
    } finally {
      await plain.dispose();
    }
    const narrow = join(folder, "mmproj-32.gguf");
    await synthesizeProjector({ outPath: narrow, nEmbdOut: 32, kind: "vision", seed: 1 });
    await expect(Llama.load({ modelPath: STORIES(), mmprojPath: narrow, nCtx: 128 })).rejects.toMatchObject({ code: "INCOMPATIBLE_MMPROJ", message: expect.stringContaining("n_embd = 32") });
    await expect(Llama.load({ modelPath: STORIES(), mmprojPath: join(folder, "none.gguf"), nCtx: 128 })).rejects.toBeInstanceOf(LlamaError);
    const model = await LlamaModel.load(STORIES());
    try {
      await expect(LlamaProjector.load(model, STORIES())).rejects.toMatchObject({ code: "MODEL_LOAD_FAILED" });
    } finally {
      model.dispose();
    }
  });
});
