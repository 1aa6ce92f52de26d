// `llama-napi embed`: embedding vectors of texts.
import { createInterface } from "node:readline";
import type { EmbeddingList } from "../completion/types.js";
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { loadLlama, type CliIo } from "./io.js";
import { loadOptions, loadOptionsFrom } from "./options.js";

export const embedSpec: CommandSpec = {
  name: "embed",
  usage: "embed -m MODEL [TEXT...] [options]",
  brief: "print embedding vectors",
  summary: "Print the embedding vector of each TEXT (or of each stdin line) as a JSON array, one per line.",
  groups: [
    {
      title: "Output",
      options: {
        normalize: { type: "boolean", help: "scale each vector to unit length" },
        json: { type: "boolean", help: "print OpenAI's embeddings response object instead" },
        ...helpOption,
      },
    },
    { title: "Model", options: loadOptions },
  ],
  maxPositionals: Infinity,
};

async function stdinLines(io: CliIo): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of createInterface({ input: io.stdin, terminal: false })) if (line.trim() !== "") lines.push(line);
  return lines;
}

export async function embedCommand(flags: Flags, io: CliIo): Promise<number> {
  const load = loadOptionsFrom(flags, { embedding: true });
  const texts = flags.positionals.length > 0 ? flags.positionals : await stdinLines(io);
  if (texts.length === 0) throw new UsageError("nothing to embed: pass TEXT arguments or lines on stdin");
  const llama = await loadLlama(io, load);
  try {
    const vectors = await llama.embed(texts, { normalize: flags.bool("normalize") });
    if (flags.bool("json")) {
      const tokens = texts.reduce((sum, text) => sum + llama.tokenize(text).length, 0);
      const list: EmbeddingList = {
        object: "list",
        data: vectors.map((v, index) => ({ object: "embedding", embedding: Array.from(v), index })),
        model: llama.modelPath,
        usage: { prompt_tokens: tokens, total_tokens: tokens },
      };
      io.stdout.write(JSON.stringify(list) + "\n");
    } else {
      for (const vector of vectors) io.stdout.write(JSON.stringify(Array.from(vector)) + "\n");
    }
    return 0;
  } finally {
    await llama.dispose();
  }
}
