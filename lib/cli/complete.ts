// `llama-napi complete`: continue a prompt, streaming the text to stdout.
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { loadLlama, readAll, readTextFile, type CliIo } from "./io.js";
import { mediaFrom, mediaOptions, withMarkers } from "./media.js";
import { dropUndefined, loadOptions, loadOptionsFrom, samplingOptions, samplingOptionsFrom } from "./options.js";

export const completeSpec: CommandSpec = {
  name: "complete",
  usage: "complete -m MODEL -p PROMPT [options]",
  brief: "continue a prompt, streaming the text",
  summary: "Continue PROMPT with the model, streaming the text to stdout as it is generated.",
  groups: [
    {
      title: "Input and output",
      options: {
        prompt: { type: "string", short: "p", value: "TEXT", help: "the prompt; - reads it from stdin" },
        file: { type: "string", short: "f", value: "FILE", help: "read the prompt from FILE" },
        suffix: { type: "string", value: "TEXT", help: "text after the completion (fill-in-the-middle models)" },
        echo: { type: "boolean", help: "print the prompt before the completion" },
        truncate: { type: "boolean", help: "drop the start of a prompt too long for the context" },
        json: { type: "boolean", help: "print the whole completion object as JSON instead of streaming" },
        logprobs: { type: "string", value: "N", help: "with --json: log-probabilities of each token and N alternatives" },
        ...mediaOptions,
        ...helpOption,
      },
    },
    { title: "Sampling", options: samplingOptions },
    { title: "Model", options: loadOptions },
  ],
  maxPositionals: 0,
};

/** The prompt of -p TEXT, -p - (stdin) or -f FILE. */
export async function promptFrom(flags: Flags, io: CliIo): Promise<string> {
  const text = flags.string("prompt");
  const file = flags.string("file");
  if (text !== undefined && file !== undefined) throw new UsageError("use either --prompt or --file");
  if (file !== undefined) return readTextFile(file);
  if (text === undefined) throw new UsageError("--prompt (or --file) is required");
  return text === "-" ? readAll(io.stdin) : text;
}

export async function completeCommand(flags: Flags, io: CliIo): Promise<number> {
  const logprobs = flags.int("logprobs", { min: 0, max: 100 });
  if (logprobs !== undefined && !flags.bool("json")) throw new UsageError("--logprobs needs --json");
  const options = dropUndefined({
    ...(await samplingOptionsFrom(flags, readTextFile)),
    suffix: flags.string("suffix"),
    echo: flags.bool("echo") || undefined,
    truncate: flags.bool("truncate") || undefined,
    logprobs,
  });
  const load = loadOptionsFrom(flags);
  const media = (await mediaFrom(flags)).map((m) => m.bytes);
  if (media.length > 0) Object.assign(options, { media });
  // Media without markers in the prompt go before it, as llama-mtmd-cli puts them.
  const prompt = withMarkers(await promptFrom(flags, io), media.length);
  const llama = await loadLlama(io, load);
  try {
    if (flags.bool("json")) {
      const completion = await llama.createCompletion(prompt, options);
      io.stdout.write(JSON.stringify(completion, null, 2) + "\n");
      return 0;
    }
    for await (const chunk of llama.createCompletion(prompt, { ...options, stream: true })) {
      io.stdout.write(chunk.choices[0]!.text);
    }
    if (io.stdout.isTTY) io.stdout.write("\n");
    return 0;
  } finally {
    await llama.dispose();
  }
}
