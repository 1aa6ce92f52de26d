// The README's low-level snippet: greedy continuation of "Once upon a time" on stories260K.
import { LlamaModel, generateTokens } from "llama-napi";

const model = await LlamaModel.load("../shared/models/stories260K.gguf");
const context = await model.createContext({ nCtx: 256, nThreads: 2 });
const sampler = model.createSampler({ temperature: 0 }); // greedy

const prompt = model.tokenize("Once upon a time"); // [1, 403, 407, 261, 378]: BOS added
const decoder = model.createTokenDecoder();
let text = "";
for await (const token of generateTokens(context, sampler, prompt, { maxTokens: 48 })) {
  text += decoder.push(token);
}
console.log("Once upon a time" + text + decoder.flush());

sampler.dispose();
await context.dispose();
model.dispose();
