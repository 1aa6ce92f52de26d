// A weather-tool loop: the model calls a tool, the app runs it, the model answers with its result.
// The test model is tiny and knows no tools, so toolChoice "required" makes the template's grammar
// write the call; a real instruction-tuned model (Qwen 2.5, Llama 3.1, ...) needs no such push.
//   node examples/tools.mjs
import { readFileSync } from "node:fs";
import { Llama } from "llama-napi";

// stories260K ships no chat template: lend it Qwen 2.5's, from the vendored llama.cpp.
const chatTemplate = readFileSync(new URL("../vendor/llama.cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja", import.meta.url), "utf8");
const llm = await Llama.load({ modelPath: "../shared/models/stories260K.gguf", chatTemplate, nCtx: 2048, nThreads: 2 });

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "The current weather in a city",
      parameters: {
        type: "object",
        properties: { city: { type: "string", enum: ["Paris", "Tokyo", "Lima"] }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
        required: ["city", "unit"],
      },
    },
  },
];
const getWeather = ({ city, unit }) => ({ city, temperature: unit === "celsius" ? 21 : 70, unit });

const messages = [{ role: "user", content: "What is the weather in Paris?" }];
const first = await llm.createChatCompletion({ messages, tools, toolChoice: "required", temperature: 0, seed: 1 });
const { message } = first.choices[0];
messages.push(message);
for (const call of message.tool_calls) {
  const result = getWeather(JSON.parse(call.function.arguments));
  console.log(`call: ${call.function.name}(${call.function.arguments}) -> ${JSON.stringify(result)}`);
  messages.push({ role: "tool", tool_call_id: call.id, content: JSON.stringify(result) });
}

const answer = await llm.createChatCompletion({ messages, tools, temperature: 0, maxTokens: 32 });
console.log(`reply: ${answer.choices[0].message.content}`);
await llm.dispose();
