// A question about an image, through a multimodal projector (mmproj). The model and projector here
// are tiny and random, made on the spot, so the words mean nothing: a real vision model (Gemma 3,
// SmolVLM, LLaVA...) with its mmproj file answers about the picture.
//   node examples/image.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Llama, encodePng, seededImage, synthesizeProjector } from "llama-napi";

const mmprojPath = join(tmpdir(), "llama-napi-example-mmproj.gguf");
await synthesizeProjector({ outPath: mmprojPath, nEmbdOut: 64, kind: "vision", seed: 7 }); // stories260K is 64 wide
writeFileSync(join(tmpdir(), "llama-napi-example.png"), encodePng(seededImage(56, 56, 1)));

const llm = await Llama.load({ modelPath: "../shared/models/stories260K.gguf", mmprojPath, chatTemplate: "chatml", nCtx: 512, nThreads: 2 });
console.log(llm.capabilities); // { vision: true, audio: false }

const image = readFileSync(join(tmpdir(), "llama-napi-example.png"));
const reply = await llm.createChatCompletion({
  messages: [
    {
      role: "user",
      content: [
        { type: "image_url", image_url: { url: `data:image/png;base64,${image.toString("base64")}` } },
        { type: "text", text: "What is in this picture?" },
      ],
    },
  ],
  maxTokens: 24,
  temperature: 0,
});
console.log(reply.choices[0].message.content);
console.log(reply.usage.prompt_tokens, "prompt tokens, 16 of them the image's");
await llm.dispose();
