// `llama-napi chat`: a conversation in the model's chat template. Interactive on a terminal (line
// editing and history by readline, the conversation kept across turns); otherwise each stdin line
// is a user turn, or -p sends one message.
import { createInterface } from "node:readline";
import type { ChatContentPart, ChatMessage } from "../completion/types.js";
import type { Llama, SamplingOptions } from "../completion/llama.js";
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { loadLlama, readTextFile, type CliIo } from "./io.js";
import { mediaFrom, mediaOptions } from "./media.js";
import { loadOptions, loadOptionsFrom, samplingOptions, samplingOptionsFrom } from "./options.js";

export const chatSpec: CommandSpec = {
  name: "chat",
  usage: "chat -m MODEL [--system TEXT] [options]",
  brief: "chat in the model's template, interactively or from stdin",
  summary:
    "Chat with the model through its chat template (ChatML when it has none). On a terminal this is an\n" +
    "interactive session; otherwise every line of stdin is one user message and each reply is printed\n" +
    "on its own line.",
  groups: [
    {
      title: "Conversation",
      options: {
        system: { type: "string", value: "TEXT", help: "system message that opens the conversation" },
        prompt: { type: "string", short: "p", value: "TEXT", help: "send this one message, print the reply and exit" },
        json: { type: "boolean", help: "with --prompt: print the whole chat.completion object as JSON" },
        ...mediaOptions,
        ...helpOption,
      },
    },
    { title: "Sampling", options: samplingOptions },
    { title: "Model", options: loadOptions },
  ],
  maxPositionals: 0,
  notes:
    "In the interactive session: /reset starts over (keeping --system), /exit or Ctrl-D quits, and\n" +
    "Ctrl-C stops a reply that is being written (at the prompt it quits).",
};

/** A conversation: the messages so far, and a turn that streams the reply and keeps it. */
export class ChatSession {
  readonly messages: ChatMessage[] = [];

  /** Images and sounds for the first message (--image, --audio); after /reset, the next first message. */
  #media: ChatContentPart[];

  constructor(
    private readonly llama: Llama,
    private readonly sampling: SamplingOptions,
    private readonly system?: string,
    private readonly media: ChatContentPart[] = [],
  ) {
    this.#media = media;
    this.reset();
  }

  reset(): void {
    this.messages.length = 0;
    this.#media = this.media;
    if (this.system !== undefined) this.messages.push({ role: "system", content: this.system });
  }

  /** Sends a user message; `onText` gets the reply as it streams. An aborted reply is kept as far as it got. */
  async send(text: string, onText: (delta: string) => void, signal?: AbortSignal): Promise<string> {
    // The media go before the first message's text; kept in the history, so the image stays cached.
    const user: ChatMessage = { role: "user", content: this.#media.length > 0 ? [...this.#media, { type: "text", text }] : text };
    const messages: ChatMessage[] = [...this.messages, user];
    let reply = "";
    try {
      for await (const chunk of this.llama.createChatCompletion({ ...this.sampling, messages, stream: true, signal })) {
        const delta = chunk.choices[0]!.delta.content ?? "";
        reply += delta;
        onText(delta);
      }
    } catch (err) {
      if (!signal?.aborted) throw err;
    }
    this.#media = [];
    this.messages.push(user, { role: "assistant", content: reply });
    return reply;
  }
}

async function interactive(session: ChatSession, io: CliIo): Promise<void> {
  const rl = createInterface({ input: io.stdin, output: io.stdout, terminal: true, historySize: 1000, prompt: "> " });
  let reply: AbortController | null = null;
  rl.on("SIGINT", () => {
    if (reply) reply.abort();
    else rl.close();
  });
  io.stdout.write("Chatting; /reset starts over, /exit quits.\n");
  rl.prompt();
  for await (const line of rl) {
    const text = line.trim();
    if (text === "/exit" || text === "/quit") break;
    if (text === "/reset") {
      session.reset();
      io.stdout.write("(conversation cleared)\n");
    } else if (text !== "") {
      reply = new AbortController();
      try {
        await session.send(text, (delta) => io.stdout.write(delta), reply.signal);
        io.stdout.write("\n");
      } catch (err) {
        // One failed turn (a conversation grown past the context, say) need not end the session.
        io.stdout.write(`\n(error: ${(err as Error).message}; /reset starts over)\n`);
      } finally {
        reply = null;
      }
    }
    rl.prompt();
  }
  rl.close();
  io.stdout.write("\n");
}

async function fromLines(session: ChatSession, io: CliIo): Promise<void> {
  const rl = createInterface({ input: io.stdin, terminal: false });
  for await (const line of rl) {
    if (line.trim() === "") continue;
    await session.send(line, (delta) => io.stdout.write(delta));
    io.stdout.write("\n");
  }
}

export async function chatCommand(flags: Flags, io: CliIo): Promise<number> {
  const prompt = flags.string("prompt");
  if (flags.bool("json") && prompt === undefined) throw new UsageError("--json needs --prompt");
  const sampling = await samplingOptionsFrom(flags, readTextFile);
  const system = flags.string("system");
  const media = (await mediaFrom(flags)).map((m) => m.part);
  const llama = await loadLlama(io, loadOptionsFrom(flags));
  try {
    if (prompt !== undefined && flags.bool("json")) {
      const messages: ChatMessage[] = system === undefined ? [] : [{ role: "system", content: system }];
      const content = media.length > 0 ? [...media, { type: "text" as const, text: prompt }] : prompt;
      const completion = await llama.createChatCompletion({ ...sampling, messages: [...messages, { role: "user", content }] });
      io.stdout.write(JSON.stringify(completion, null, 2) + "\n");
      return 0;
    }
    const session = new ChatSession(llama, sampling, system, media);
    if (prompt !== undefined) {
      await session.send(prompt, (delta) => io.stdout.write(delta));
      io.stdout.write("\n");
    } else if (io.stdin.isTTY && io.stdout.isTTY) {
      await interactive(session, io);
    } else {
      await fromLines(session, io);
    }
    return 0;
  } finally {
    await llama.dispose();
  }
}
