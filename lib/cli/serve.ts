// `llama-napi serve`: the OpenAI-compatible server, until SIGINT or SIGTERM.
import { mkdir, stat } from "node:fs/promises";
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { loadLlama, readTextFile, type CliIo } from "./io.js";
import { loadOptions, loadOptionsFrom } from "./options.js";
import { Cors } from "../server/cors.js";

export const serveSpec: CommandSpec = {
  name: "serve",
  usage: "serve -m MODEL [--port 8080] [--parallel N] [options]",
  brief: "serve an OpenAI-compatible HTTP API",
  summary:
    "Serve the model over OpenAI's HTTP API: POST /v1/completions, /v1/chat/completions,\n" +
    "/v1/responses (all also streamed as server-sent events), /v1/embeddings; GET /v1/models, /health.\n" +
    "And llama-server's: POST /tokenize, /detokenize, /apply-template, /infill,\n" +
    "/slots/ID?action=save|restore|erase; GET /props, /lora-adapters, and with --metrics\n" +
    "Prometheus metrics at GET /metrics. With --mmproj, chat messages take image_url and\n" +
    "input_audio parts (data: URLs; file:// under --media-path; no remote URLs).",
  groups: [
    {
      title: "Server",
      options: {
        host: { type: "string", value: "ADDRESS", help: "address to bind (default 127.0.0.1: this machine only)" },
        port: { type: "string", value: "PORT", help: "port; 0: any free one (default 8080)" },
        parallel: { type: "string", value: "N", help: "requests decoded together as sequences of one context (default 1)" },
        "api-key": { type: "string", value: "KEY", help: "require Authorization: Bearer KEY (all but /health)" },
        "api-key-file": { type: "string", value: "FILE", help: "read the API key from FILE (keeps it out of ps)" },
        alias: { type: "string", value: "NAME", help: "model id in /v1/models and responses (default: the file name)" },
        "max-body": { type: "string", value: "BYTES", help: "largest request body (default 1048576; 67108864 with --mmproj, for images in data: URLs)" },
        "max-tokens-cap": { type: "string", value: "N", help: "most tokens one request may generate (default: --ctx-size)" },
        "max-queue": { type: "string", value: "N", help: "requests waiting beyond --parallel before 429 with Retry-After: 1 (default 64)" },
        cors: { type: "string", value: "ORIGIN[,ORIGIN]", help: "let browsers on these origins call the API ('*': any, only without an API key); default: no CORS" },
        "slot-save-path": { type: "string", value: "DIR", help: "enable POST /slots/ID save and restore, with files in DIR (created if missing)" },
        metrics: { type: "boolean", help: "serve Prometheus metrics at GET /metrics, llama-server's (needs the API key)" },
        "shutdown-grace": { type: "string", value: "SECONDS", help: "time requests in flight get to finish on SIGINT/SIGTERM (default 10)" },
        embedding: { type: "boolean", help: "create the embedding context at startup instead of on first use" },
        "media-path": { type: "string", value: "DIR", help: "with --mmproj: let requests name local media, file:// URLs relative to DIR (default: none)" },
        ...helpOption,
      },
    },
    { title: "Model", options: loadOptions },
  ],
  maxPositionals: 0,
  notes:
    "On SIGINT or SIGTERM the server stops accepting connections, lets requests in flight finish\n" +
    "within the grace period (then ends them) and exits 0; a second signal exits at once. A client\n" +
    "that closes its connection stops its request within a token, freeing its sequence.",
};

export async function serveCommand(flags: Flags, io: CliIo): Promise<number> {
  if (flags.has("api-key") && flags.has("api-key-file")) throw new UsageError("use either --api-key or --api-key-file");
  const keyFile = flags.string("api-key-file");
  const apiKey = keyFile !== undefined ? (await readTextFile(keyFile)).trim() : flags.string("api-key");
  if (apiKey === "") throw new UsageError("the API key is empty");
  const parallel = flags.int("parallel", { min: 1, max: 256 }) ?? 1;
  const server = {
    host: flags.string("host") ?? "127.0.0.1",
    port: flags.int("port", { min: 0, max: 65535 }) ?? 8080,
    apiKey,
    modelName: flags.string("alias"),
    maxBodyBytes: flags.int("max-body", { min: 1 }) ?? (flags.has("mmproj") ? 64 << 20 : undefined),
    maxTokensCap: flags.int("max-tokens-cap", { min: 1 }),
    maxQueue: flags.int("max-queue", { min: 0 }),
    cors: flags.string("cors")?.split(",").map((origin) => origin.trim()),
    slotSavePath: await slotDirectory(flags.string("slot-save-path")),
    metrics: flags.bool("metrics"),
  };
  try {
    new Cors(server.cors, apiKey !== undefined);
  } catch (err) {
    throw new UsageError(`--${(err as Error).message}`);
  }
  const graceMs = (flags.number("shutdown-grace", { min: 0 }) ?? 10) * 1000;
  const mediaPath = flags.string("media-path");
  if (mediaPath !== undefined && !(await stat(mediaPath).catch(() => null))?.isDirectory()) throw new UsageError(`--media-path: ${mediaPath} is not a directory`);
  const load = loadOptionsFrom(flags, { nParallel: parallel, embedding: flags.bool("embedding") || undefined, allowLocalMedia: mediaPath });

  const { startServer } = await import("../server/index.js");
  const llama = await loadLlama(io, load);
  try {
    const openai = await startServer({ ...server, llama });
    io.stderr.write(`llama-napi: serving ${openai.modelName} at ${openai.url} (${parallel} parallel, context ${llama.nCtx} each)\n`);
    if (apiKey === undefined && !["127.0.0.1", "::1", "localhost"].includes(server.host)) {
      io.stderr.write(`llama-napi: warning: no --api-key, and ${server.host} may be reachable from other machines\n`);
    }
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    const forceExit = () => {
      io.stderr.write("llama-napi: second signal, exiting now\n");
      process.exit(1);
    };
    process.once("SIGINT", forceExit);
    process.once("SIGTERM", forceExit);
    const pending = openai.pending;
    io.stderr.write(`llama-napi: ${signal}: finishing ${pending} request${pending === 1 ? "" : "s"} in flight (up to ${graceMs / 1000} s)\n`);
    await openai.close(graceMs);
    return 0;
  } finally {
    await llama.dispose();
  }
}

/** The --slot-save-path directory, created if missing; a usage error when it names something else. */
async function slotDirectory(dir: string | undefined): Promise<string | undefined> {
  if (dir === undefined) return undefined;
  if (dir === "") throw new UsageError("--slot-save-path is empty");
  await mkdir(dir, { recursive: true }).catch(() => undefined);
  const found = await stat(dir).catch(() => null);
  if (found === null || !found.isDirectory()) throw new UsageError(`--slot-save-path: ${dir} is not a directory`);
  return dir;
}
