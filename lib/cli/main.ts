// The `llama-napi` command line: dispatches to the commands and turns their outcome into an exit
// code: 0 success, 1 a runtime error (one line on stderr), 2 a usage error.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../package-root.js";
import { helpText, parseCommand, UsageError, type CommandSpec, type Flags } from "./args.js";
import { chatCommand, chatSpec } from "./chat.js";
import { completeCommand, completeSpec } from "./complete.js";
import { embedCommand, embedSpec } from "./embed.js";
import { inspectCommand, inspectSpec } from "./inspect.js";
import { processIo, type CliIo } from "./io.js";
import { cacheCommand, cacheSpec, pullCommand, pullSpec } from "./pull.js";
import { rerankCommand, rerankSpec } from "./rerank.js";
import { serveCommand, serveSpec } from "./serve.js";
import { tokenizeCommand, tokenizeSpec } from "./tokenize.js";

interface Command {
  spec: CommandSpec;
  run(flags: Flags, io: CliIo): Promise<number>;
}

const commands = new Map<string, Command>([
  ["complete", { spec: completeSpec, run: completeCommand }],
  ["chat", { spec: chatSpec, run: chatCommand }],
  ["embed", { spec: embedSpec, run: embedCommand }],
  ["rerank", { spec: rerankSpec, run: rerankCommand }],
  ["tokenize", { spec: tokenizeSpec, run: tokenizeCommand }],
  ["inspect", { spec: inspectSpec, run: inspectCommand }],
  ["serve", { spec: serveSpec, run: serveCommand }],
  ["pull", { spec: pullSpec, run: pullCommand }],
  ["cache", { spec: cacheSpec, run: cacheCommand }],
]);

/** Commands with their own parsing and help, loaded only when run (they load the addon). */
const externalCommands = new Map<string, { summary: string; run(argv: string[]): Promise<number> }>([
  ["quantize", { summary: "quantize a GGUF model to another type", run: async (argv) => (await import("./quant.js")).quantizeCommand(argv) }],
  ["bench", { summary: "compare models' speed, memory and quality", run: async (argv) => (await import("./quant.js")).benchCommand(argv) }],
  ["synth", { summary: "write a random-weight model of a given shape", run: async (argv) => (await import("./quant.js")).synthCommand(argv) }],
  ["rpc-server", { summary: "serve model layers to other machines over ggml RPC", run: async (argv) => (await import("./rpc.js")).rpcServerCommand(argv) }],
  ["build", { summary: "build the native addon from source (no prebuild for this platform)", run: async (argv) => (await import("./build.js")).buildCommand(argv) }],
]);

/** The package's version, from its package.json. */
function version(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

function mainHelp(): string {
  const rows: Array<[string, string]> = [
    ...[...commands.values()].map(({ spec }) => [spec.name, spec.brief] as [string, string]),
    ...[...externalCommands].map(([name, c]) => [name, c.summary] as [string, string]),
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return [
    "Usage: llama-napi <command> [options]",
    "",
    "Run GGUF language models with llama.cpp from Node.js.",
    "",
    "Commands:",
    ...rows.map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`),
    "",
    "Run 'llama-napi <command> --help' for a command's options. Exit codes: 0 success, 1 error, 2 usage.",
    "",
  ].join("\n");
}

/** A runtime error as one line: the message, whitespace collapsed. */
function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, " ").trim() || (err instanceof Error ? err.name : "unknown error");
}

/** Runs the CLI on `argv` (the arguments after the program name) and resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(mainHelp());
    return 2;
  }
  if (name === "--help" || name === "-h" || (name === "help" && rest[0] === undefined)) {
    io.stdout.write(mainHelp());
    return 0;
  }
  if (name === "help") return runCli([rest[0]!, "--help"], io);
  if (name === "--version" || name === "-v") {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const external = externalCommands.get(name);
  if (external) return external.run(rest);
  const command = commands.get(name);
  if (command === undefined) {
    io.stderr.write(`llama-napi: unknown command ${JSON.stringify(name)}; run 'llama-napi --help' for the list\n`);
    return 2;
  }
  try {
    const flags = parseCommand(command.spec, rest);
    if (flags.bool("help")) {
      io.stdout.write(helpText(command.spec));
      return 0;
    }
    return await command.run(flags, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`llama-napi ${name}: ${err.message}\nRun 'llama-napi ${name} --help' for its options.\n`);
      return 2;
    }
    io.stderr.write(`llama-napi ${name}: ${oneLine(err)}\n`);
    return 1;
  }
}
