// `llama-napi rerank`: documents ranked by their relevance to a query, by a reranker model.
import { createInterface } from "node:readline";
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { loadLlama, readTextFile, type CliInput, type CliIo } from "./io.js";
import { loadOptions, loadOptionsFrom } from "./options.js";

export const rerankSpec: CommandSpec = {
  name: "rerank",
  usage: "rerank -m MODEL --query TEXT [DOCUMENT...] [options]",
  brief: "rank documents by relevance to a query",
  summary:
    "Score each DOCUMENT (or each line of --file, or of stdin) against the query with a reranker model " +
    "(one with a rank head, such as Qwen3-Reranker or bge-reranker) and print them best first, one per line: " +
    "the score, the document's index and its text, separated by tabs.",
  groups: [
    {
      title: "Input and output",
      options: {
        query: { type: "string", short: "q", value: "TEXT", help: "the query (required)" },
        file: { type: "string", short: "f", value: "FILE", help: "read the documents from FILE, one per line" },
        "top-n": { type: "string", value: "N", help: "print the best N documents only" },
        json: { type: "boolean", help: "print llama-server's /rerank response object instead" },
        ...helpOption,
      },
    },
    { title: "Model", options: loadOptions },
  ],
  maxPositionals: Infinity,
};

/** The lines of a text or stream that are not blank. */
async function nonBlankLines(input: CliInput | string): Promise<string[]> {
  const all = typeof input === "string" ? input.split(/\r?\n/) : createInterface({ input, terminal: false });
  const out: string[] = [];
  for await (const line of all) if (line.trim() !== "") out.push(line);
  return out;
}

/** The documents: the arguments, the lines of --file, or those of stdin. */
async function documentsFrom(flags: Flags, io: CliIo): Promise<string[]> {
  const file = flags.string("file");
  if (file !== undefined && flags.positionals.length > 0) throw new UsageError("pass DOCUMENT arguments or --file, not both");
  const documents = file !== undefined ? await nonBlankLines(await readTextFile(file)) : flags.positionals.length > 0 ? flags.positionals : await nonBlankLines(io.stdin);
  if (documents.length === 0) throw new UsageError("nothing to rerank: pass DOCUMENT arguments, --file or lines on stdin");
  return documents;
}

export async function rerankCommand(flags: Flags, io: CliIo): Promise<number> {
  const query = flags.required("query");
  const topN = flags.int("top-n", { min: 1 });
  const load = loadOptionsFrom(flags);
  const documents = await documentsFrom(flags, io);
  const llama = await loadLlama(io, load);
  try {
    const list = await llama.createRerank(query, documents, { topN });
    if (flags.bool("json")) {
      io.stdout.write(JSON.stringify(list) + "\n");
    } else {
      for (const { index, relevance_score } of list.results) io.stdout.write(`${relevance_score.toFixed(6)}\t${index}\t${documents[index]}\n`);
    }
    return 0;
  } finally {
    await llama.dispose();
  }
}
