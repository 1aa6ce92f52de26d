// The server the tool-calling tests talk to: stories260K with Qwen 2.5's chat template (which has
// tool calls), 2 sequences, behind an API key, and the official openai client pointed at it.
import OpenAI from "openai";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { templateSource } from "../completion/chat-tools.fixtures.js";
import { modelPath } from "../helpers.js";

export interface ToolServer {
  llama: Llama;
  server: OpenAIServer;
  client: OpenAI;
  /** Closes the server, then frees the model. */
  stop(): Promise<void>;
}

export async function startToolServer(key: string): Promise<ToolServer> {
  const llama = await Llama.load({ modelPath: modelPath("stories260K.gguf"), chatTemplate: templateSource("Qwen-Qwen2.5-7B-Instruct"), nCtx: 2048, nThreads: 2, nParallel: 2 });
  const server = await startServer({ llama, port: 0, apiKey: key, maxTokensCap: 300 }).catch(async (error: unknown) => {
    await llama.dispose();
    throw error;
  });
  const client = new OpenAI({ apiKey: key, baseURL: server.url, maxRetries: 0 });
  return {
    llama,
    server,
    client,
    stop: async () => {
      await server.close(0);
      await llama.dispose();
    },
  };
}
