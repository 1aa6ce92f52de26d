// llama.cpp's own tools as references: built from the vendored source in the addon's CMake tree
// (same compiler, same flags) and run on this machine, so that a figure that depends on the CPU's
// kernels (AMX, AVX-512, AVX2) is never one stored from another machine.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { modelPath, repoRoot } from "./helpers.js";

const buildDir = join(repoRoot, "build", "cmake");

/** The path of a llama.cpp tool, built first when missing (the setup builds the addon's tree). */
export function llamaCppTool(name: "llama-completion" | "llama-perplexity" | "llama-quantize" | "llama-gguf-split" | "llama-mtmd-cli"): string {
  const bin = join(buildDir, "bin", name);
  if (!existsSync(bin)) {
    if (!existsSync(join(buildDir, "CMakeCache.txt"))) throw new Error(`${buildDir} is not configured: run npm run build`);
    execFileSync("cmake", ["--build", buildDir, "--target", name], { stdio: ["ignore", "ignore", "inherit"] });
  }
  return bin;
}

/**
 * Runs a llama.cpp tool until its output is complete. The tools' log thread (which writes stdout
 * too) loses the end of the output at exit when the machine is oversubscribed (seen with 4 busy
 * processes on 2 cores, for llama-completion's 700 tokens and llama-perplexity's summary); such a
 * run is run again, after a growing pause.
 */
export function completeOutput<T extends string | Buffer | { stdout: string; stderr: string }>(what: string, run: () => T, complete: (output: T) => boolean, tries = 6): T {
  let output = run();
  for (let attempt = 1; attempt < tries && !complete(output); attempt++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250 * 2 ** attempt);
    output = run();
  }
  if (!complete(output)) {
    const tail = (text: string) => JSON.stringify(text.slice(-120));
    const ending = typeof output === "string" || Buffer.isBuffer(output) ? tail(output.toString()) : `${tail(output.stdout)} (stdout), ${tail(output.stderr)} (stderr)`;
    throw new Error(`${what} printed an unexpected ending ${tries} times: ${ending}`);
  }
  return output;
}

/** What llama-completion prints on stdout for `args`: the prompt, the text (and a blank line, left out). */
export function llamaCompletionOutput(args: string[]): Buffer {
  const stdout = completeOutput(
    `llama-completion ${args.join(" ")}`,
    () => execFileSync(llamaCppTool("llama-completion"), args, { stdio: ["ignore", "pipe", "ignore"], maxBuffer: 1 << 24 }),
    (out) => out.subarray(-2).toString() === "\n\n",
  );
  return stdout.subarray(0, -2);
}

export interface GreedyReference {
  model: "stories260K.gguf" | "llama-2-tiny-random.gguf";
  prompt: string;
  nPredict: number;
  /** What llama-completion printed: the prompt as the model's tokens render it (BOS left out), then the greedy continuation. */
  printed: Buffer;
}

const GREEDY_CASES: Array<Omit<GreedyReference, "printed">> = [
  { model: "stories260K.gguf", prompt: "Once upon a time", nPredict: 64 },
  { model: "stories260K.gguf", prompt: "Lily and Tom went to the park", nPredict: 48 },
  { model: "stories260K.gguf", prompt: "The little dog was sad because", nPredict: 40 },
  { model: "stories260K.gguf", prompt: "One day", nPredict: 100 },
  { model: "llama-2-tiny-random.gguf", prompt: "Hello world", nPredict: 24 },
  { model: "llama-2-tiny-random.gguf", prompt: "日本語のテキスト 🦙", nPredict: 24 },
];

/**
 * Greedy continuations by llama.cpp's `llama-completion` (temperature 0, 2 threads), for both test
 * models. (llama-simple prints the same, but it takes no thread count, and its 4 threads spinning
 * on a 2-core machine make each token cost half a second.)
 */
export function greedyReferences(): GreedyReference[] {
  return GREEDY_CASES.map((c) => {
    const args = ["-m", modelPath(c.model), "-p", c.prompt, "-n", String(c.nPredict), "-t", "2", "--temp", "0", "-no-cnv", "--no-warmup"];
    return { ...c, printed: llamaCompletionOutput(args) };
  });
}

export interface DivergenceReference {
  perplexity: number;
  meanKld: number;
  medianKld: number;
  p99Kld: number;
  rmsDeltaP: number;
  sameTop: number;
}

export interface PerplexityReference {
  nCtx: number;
  chunks: number;
  perplexity: number;
  uncertainty: number;
  /** llama-perplexity --kl-divergence of llama-quantize's Q8_0 and Q4_0 against the F32 model. */
  divergence: Record<"Q8_0" | "Q4_0", DivergenceReference>;
}

/** llama-perplexity's whole output (it logs on stderr and prints the chunk values on stdout), up to its last figure. */
function perplexityOutput(args: string[]): string {
  return completeOutput(
    `llama-perplexity ${args.join(" ")}`,
    () => execFileSync("sh", ["-c", '"$0" "$@" 2>&1', llamaCppTool("llama-perplexity"), ...args], { encoding: "utf8", maxBuffer: 64 << 20 }),
    (out) => (args.includes("--kl-divergence") ? /Same top p:\s*[\d.]+ ± [\d.]+ %/ : /Final estimate: PPL = [\d.]+ \+\/- [\d.]+/).test(out),
  );
}

function numberIn(output: string, pattern: RegExp, what: string): number {
  const match = pattern.exec(output);
  if (!match) throw new Error(`llama-perplexity printed no ${what}:\n${output.slice(-3000)}`);
  return Number(match[1]);
}

/**
 * What llama-perplexity reports for stories260K on `textFile` in chunks of `nCtx` tokens with 2
 * threads: the F32 model's perplexity, and the KL divergence of llama-quantize's Q8_0 and Q4_0.
 */
export function perplexityReference(textFile: string, nCtx: number): PerplexityReference {
  const model = modelPath("stories260K.gguf");
  const threads = "2";
  const work = mkdtempSync(join(tmpdir(), "llama-napi-ppl-"));
  try {
    const base = perplexityOutput(["-m", model, "-f", textFile, "-c", String(nCtx), "-t", threads]);
    const logits = join(work, "base.kld");
    perplexityOutput(["-m", model, "-f", textFile, "-c", String(nCtx), "-t", threads, "--kl-divergence-base", logits]);
    const divergence = {} as Record<"Q8_0" | "Q4_0", DivergenceReference>;
    for (const type of ["Q8_0", "Q4_0"] as const) {
      const quantized = join(work, `stories260K-${type}.gguf`);
      execFileSync(llamaCppTool("llama-quantize"), [model, quantized, type, threads], { stdio: "ignore" });
      const out = perplexityOutput(["-m", quantized, "-c", String(nCtx), "-t", threads, "--kl-divergence-base", logits, "--kl-divergence"]);
      divergence[type] = {
        perplexity: numberIn(out, /Mean PPL\(Q\)\s*:\s*([\d.]+)/, "Mean PPL(Q)"),
        meanKld: numberIn(out, /Mean\s+KLD:\s*([\d.]+)/, "mean KLD"),
        medianKld: numberIn(out, /Median\s+KLD:\s*([\d.]+)/, "median KLD"),
        p99Kld: numberIn(out, /99\.0%\s+KLD:\s*([\d.]+)/, "99% KLD"),
        // Printed in percent.
        rmsDeltaP: numberIn(out, /RMS Δp\s*:\s*([\d.]+)/, "RMS Δp") / 100,
        sameTop: numberIn(out, /Same top p:\s*([\d.]+)/, "same top p") / 100,
      };
    }
    return {
      nCtx,
      chunks: numberIn(base, /calculating perplexity over (\d+) chunks/, "chunk count"),
      perplexity: numberIn(base, /Final estimate: PPL = ([\d.]+)/, "final estimate"),
      uncertainty: numberIn(base, /Final estimate: PPL = [\d.]+ \+\/- ([\d.]+)/, "uncertainty"),
      divergence,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
