// Type-checks llama-napi as a CommonJS consumer sees it (require).
import llamaNapi = require("llama-napi");

async function main(): Promise<string> {
  const llm = await llamaNapi.Llama.load({ modelPath: process.argv[2]!, nCtx: 128, nThreads: 2 });
  const res: llamaNapi.Completion = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
  await llm.dispose();
  return res.choices[0]!.text;
}
main().then((text) => console.log(JSON.stringify({ via: "require", text })));
