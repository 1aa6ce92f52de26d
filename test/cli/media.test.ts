// complete and chat with --mmproj, --image and --audio: the API's text for the same files.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "../../lib/index.js";
import { imageFile, projectorModel, soundFile } from "../fixtures.js";
import { modelPath } from "../helpers.js";
import { run } from "./run-cli.js";

const FLAGS = ["-t", "1", "-c", "512", "--temp", "0", "-n", "12"];

describe("--image and --audio", () => {
  let vision: string;
  let image: string;
  let llm: Llama;
  beforeAll(async () => {
    [vision, image] = [await projectorModel("vision"), await imageFile(2)];
    llm = await Llama.load({ modelPath: modelPath("stories260K.gguf"), mmprojPath: vision, nCtx: 512, nThreads: 1, chatTemplate: "chatml" });
  });
  afterAll(() => llm?.dispose());

  it("complete puts the image before the prompt, as llama-mtmd-cli does", async () => {
    const own = await llm.createCompletion("<__media__>Once upon a time", { media: [readFileSync(image)], maxTokens: 12, temperature: 0 });
    const res = await run(["complete", "-m", modelPath("stories260K.gguf"), "--mmproj", vision, "--image", image, "-p", "Once upon a time", ...FLAGS]);
    expect(res).toEqual({ code: 0, stdout: own.choices[0]!.text, stderr: "" });
  });

  it("chat sends the image with the first message", async () => {
    const own = await llm.createChatCompletion({
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: `data:image/png;base64,${readFileSync(image).toString("base64")}` } }, { type: "text", text: "Hello" }] }],
      maxTokens: 12,
      temperature: 0,
    });
    const res = await run(["chat", "-m", modelPath("stories260K.gguf"), "--mmproj", vision, "--chat-template", "chatml", "--image", image, "-p", "Hello", ...FLAGS]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`${own.choices[0]!.message.content}\n`);
  });

  it("refuses audio for a vision projector, a file that is not audio, and media without --mmproj", async () => {
    const sound = await soundFile(1);
    const base = ["complete", "-m", modelPath("stories260K.gguf"), "-p", "x", ...FLAGS];
    const wrong = await run([...base, "--mmproj", vision, "--audio", sound]);
    expect([wrong.code, wrong.stderr]).toEqual([1, expect.stringContaining("takes no audio")]);
    expect((await run([...base, "--mmproj", vision, "--audio", image])).code).toBe(2);
    const none = await run([...base, "--image", image]);
    expect([none.code, none.stderr]).toEqual([1, expect.stringContaining("no projector")]);
  });
});
