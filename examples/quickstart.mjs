// The README's quick start: llama-cpp-python's Llama, in Node.
import { Llama } from "llama-napi";

const llm = await Llama.load({ modelPath: "../shared/models/stories260K.gguf", nCtx: 2048, nThreads: 2, nGpuLayers: 0, verbose: false });
const res = await llm.createCompletion("Once upon a time", {
  maxTokens: 48, temperature: 0.7, topP: 0.9, topK: 40, repeatPenalty: 1.1, stop: ["</s>", "\n\n"], seed: 42,
});
console.log(res.choices[0].text, res.usage.total_tokens);

for await (const chunk of llm.createCompletion("The little dog", { maxTokens: 32, stream: true, seed: 7 })) {
  process.stdout.write(chunk.choices[0].text);
}
process.stdout.write("\n");
await llm.dispose();
