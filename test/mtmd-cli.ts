// llama.cpp's multimodal CLI (llama-mtmd-cli) as the reference for greedy text with an image or a
// sound in the prompt: built from the vendored source beside the addon, like the other tools.
import { spawnSync } from "node:child_process";
import { completeOutput, llamaCppTool } from "./llama-cpp-tools.js";

export interface MtmdCliOptions {
  model: string;
  mmproj: string;
  /** An image file; llama-mtmd-cli puts it before the prompt (the prompt has no `<__media__>` marker). */
  image?: string;
  /** A sound file, in place of `image`. */
  audio?: string;
  /** The user message, formatted by `chatTemplate`. */
  prompt: string;
  /** At least 2 (see stoppedAtEog). */
  nPredict: number;
  /** A llama.cpp template name ("chatml") or a Jinja template: stories260K carries none. */
  chatTemplate: string;
  /** Default 1. */
  threads?: number;
}

export interface MtmdCliGreedy {
  /** The greedy continuation, as the tokens' pieces print it, up to nPredict tokens or an end-of-generation token (left out). */
  text: string;
  /** How many embeddings the image or sound became, as mtmd decoded them. */
  imageTokens: number;
}

// Printed on stdout before the prompt is evaluated (mtmd-cli's hook for llama.cpp's own tests.sh).
const RESPONSE_MARKER = "<<<llama-napi: response follows>>>";
const PERF_END = /llama_perf_context_print:\s+graphs reused/;

interface CliRun {
  /** stdout between the prompt's evaluation and the closing blank line: the text, and a newline if an end-of-generation token stopped it. */
  printed: string;
  /** llama.cpp's "eval time = … / N runs": the decodes of generated tokens whose logits were read. */
  evalRuns: number;
  imageTokens: number;
}

function numberIn(stderr: string, pattern: RegExp, what: string): number {
  const match = pattern.exec(stderr);
  if (!match) throw new Error(`llama-mtmd-cli printed no ${what}:\n${stderr.slice(-3000)}`);
  return Number(match[1]);
}

function runCli(options: MtmdCliOptions, nPredict: number): CliRun {
  const media = options.image !== undefined ? ["--image", options.image] : ["--audio", options.audio!];
  const args = [
    ...["-m", options.model, "--mmproj", options.mmproj, ...media, "-p", options.prompt],
    ...["-n", String(nPredict), "--temp", "0", "--chat-template", options.chatTemplate, "-t", String(options.threads ?? 1)],
    // Verbosity 4 lets mtmd's own log lines through: they carry the image's token count.
    ...["-lv", "4"],
  ];
  const output = completeOutput(
    `llama-mtmd-cli ${args.join(" ")}`,
    () => {
      const child = spawnSync(llamaCppTool("llama-mtmd-cli"), args, {
        encoding: "utf8",
        env: { ...process.env, MTMD_TEST_RESPONSE_MARKER: RESPONSE_MARKER },
        maxBuffer: 64 << 20,
      });
      if (child.status !== 0) throw new Error(`llama-mtmd-cli exited with ${child.status ?? child.signal}:\n${child.stderr.slice(-3000)}`);
      return { stdout: child.stdout, stderr: child.stderr };
    },
    // The log thread can lose the end of the output at exit on a busy machine (see completeOutput).
    ({ stdout, stderr }) => stdout.endsWith("\n\n") && PERF_END.test(stderr),
  );
  // stdout: the marker, a newline ending the prompt's evaluation, the text, a blank line.
  const start = output.stdout.indexOf(`${RESPONSE_MARKER}\n\n`);
  if (start < 0) throw new Error(`llama-mtmd-cli printed no response marker:\n${output.stdout.slice(0, 3000)}`);
  const imageBatches = [...output.stderr.matchAll(/decoding (?:image|audio) batch \d+\/\d+, n_tokens_batch = (\d+)/g)];
  if (imageBatches.length === 0) throw new Error(`llama-mtmd-cli decoded no image or audio:\n${output.stderr.slice(-3000)}`);
  return {
    printed: output.stdout.slice(start + RESPONSE_MARKER.length + 2, -2),
    evalRuns: numberIn(output.stderr, /eval time =\s+[\d.]+ ms \/\s+(\d+) runs/, "eval count"),
    imageTokens: imageBatches.reduce((sum, match) => sum + Number(match[1]), 0),
  };
}

/**
 * Whether the generation that printed `run` stopped at an end-of-generation token, where
 * llama-mtmd-cli prints a newline that a newline of the text looks like. llama.cpp counts a
 * generated token's decode when its logits are read: all m tokens when an end-of-generation token
 * follows them, nPredict − 1 when the budget runs out (the last decode is never read).
 */
function stoppedAtEog(options: MtmdCliOptions, run: CliRun): boolean {
  if (!run.printed.endsWith("\n")) return false;
  if (run.evalRuns < options.nPredict - 1) return true;
  // nPredict − 1 runs either way: one more token of budget tells them apart, as greedy decoding
  // repeats the same tokens (an end after nPredict − 1 tokens still counts nPredict − 1).
  return runCli(options, options.nPredict + 1).evalRuns === options.nPredict - 1;
}

/** Greedy text for an image or a sound and a prompt, by llama-mtmd-cli, and the media's token count. */
export function mtmdCliGreedy(options: MtmdCliOptions): MtmdCliGreedy {
  if ((options.image === undefined) === (options.audio === undefined)) throw new TypeError("pass one of image and audio");
  // With 1, an immediate end and a spent budget both count 0 runs.
  if (!Number.isSafeInteger(options.nPredict) || options.nPredict < 2) throw new RangeError(`nPredict must be an integer of at least 2, got ${options.nPredict}`);
  const run = runCli(options, options.nPredict);
  return {
    text: stoppedAtEog(options, run) ? run.printed.slice(0, -1) : run.printed,
    imageTokens: run.imageTokens,
  };
}
