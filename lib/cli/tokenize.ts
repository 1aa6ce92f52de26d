// `llama-napi tokenize`: the model's tokens of a text, with ids and pieces. Loads the vocabulary only.
import type { Llama } from "../completion/llama.js";
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { loadLlama, readAll, type CliIo } from "./io.js";
import { modelOption } from "./options.js";

export const tokenizeSpec: CommandSpec = {
  name: "tokenize",
  usage: "tokenize -m MODEL [TEXT] [options]",
  brief: "print the tokens of a text: ids and pieces",
  summary: "Print the tokens of TEXT (or of all of stdin): one token per line, its id and its piece.",
  groups: [
    {
      title: "Options",
      options: {
        ...modelOption,
        "no-bos": { type: "boolean", help: "do not add the BOS token the model asks for" },
        special: { type: "boolean", help: "parse special-token text such as <|im_start|> into its token" },
        ids: { type: "boolean", help: "print only the ids, as one JSON array" },
        json: { type: "boolean", help: "print a JSON array of { id, piece }" },
        ...helpOption,
      },
    },
  ],
  maxPositionals: 1,
};

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A token's text; a piece that is part of a UTF-8 character shows its bytes as \xNN. */
function piece(llama: Llama, token: number): string {
  const bytes = llama.model.tokenBytes(token, true);
  try {
    return utf8.decode(bytes);
  } catch {
    return Array.from(bytes, (b) => (b < 0x80 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`)).join("");
  }
}

export async function tokenizeCommand(flags: Flags, io: CliIo): Promise<number> {
  if (flags.bool("ids") && flags.bool("json")) throw new UsageError("use either --ids or --json");
  const modelPath = flags.required("model");
  const text = flags.positionals[0] ?? (await readAll(io.stdin));
  const llama = await loadLlama(io, { modelPath, vocabOnly: true });
  try {
    const tokens = llama.tokenize(text, { addBos: !flags.bool("no-bos"), special: flags.bool("special") });
    if (flags.bool("ids")) {
      io.stdout.write(JSON.stringify(tokens) + "\n");
    } else if (flags.bool("json")) {
      io.stdout.write(JSON.stringify(tokens.map((id) => ({ id, piece: piece(llama, id) }))) + "\n");
    } else {
      const width = Math.max(0, ...tokens.map((t) => String(t).length));
      for (const id of tokens) io.stdout.write(`${String(id).padStart(width)} ${JSON.stringify(piece(llama, id))}\n`);
    }
    return 0;
  } finally {
    await llama.dispose();
  }
}
