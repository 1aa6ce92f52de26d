// Streams a completion from a real model through llama-napi's low-level classes.
//   node examples/stream.mjs [model.gguf] [prompt]
import { LlamaModel, generateTokens } from "llama-napi";
import { fileURLToPath } from "node:url";

const modelPath = process.argv[2] ?? fileURLToPath(new URL("../../shared/models/stories260K.gguf", import.meta.url));
const prompt = process.argv[3] ?? "Once upon a time";

const model = await LlamaModel.load(modelPath);
const context = await model.createContext({ nCtx: 512 });
const sampler = model.createSampler({ temperature: 0.8, topK: 40, topP: 0.95, seed: 42 });
const decoder = model.createTokenDecoder();
try {
  process.stdout.write(prompt);
  for await (const token of generateTokens(context, sampler, model.tokenize(prompt), { maxTokens: 200 })) {
    process.stdout.write(decoder.push(token));
  }
  process.stdout.write(decoder.flush() + "\n");
} finally {
  sampler.dispose();
  await context.dispose();
  model.dispose();
}
