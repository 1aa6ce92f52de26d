// Type-checks llama-napi as an ES module consumer sees it (import).
import { Llama, LlamaError, type CompletionChunk } from "llama-napi";

const llm = await Llama.load({ modelPath: process.argv[2]!, nCtx: 128, nThreads: 2 });
let text = "";
for await (const chunk of llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0, stream: true })) {
  const typed: CompletionChunk = chunk;
  text += typed.choices[0]!.text;
}
await llm.dispose();
console.log(JSON.stringify({ via: "import", text, errorClass: typeof LlamaError }));
