// Shared by the speed scripts that compare two ways of running one model (bench-rpc: local vs
// split over rpc-servers; gpu-check: CPU vs GPU): streaming createCompletion timed the way
// llama-bench times it, the two taking turns so that the machine's drift hits both alike.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const benchDir = join(root, ".bench");

/** The value after `--name` on the command line, or `fallback`. */
export function cliOption(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** A llama.cpp tool from the addon's CMake tree (same build), built first when missing. */
export function llamaCppTool(name) {
  const bin = join(root, "build/cmake/bin", name);
  if (!existsSync(bin)) execFileSync("cmake", ["--build", join(root, "build/cmake"), "--target", name], { stdio: "inherit" });
  return bin;
}

/** The generated Llama 3.2 1B-shaped Q4_0 model (random weights), made on first use. */
export async function ensureBenchModel() {
  const q4 = join(benchDir, "llama3-1b-q4_0.gguf");
  if (existsSync(q4)) return q4;
  mkdirSync(benchDir, { recursive: true });
  const { synthesizeModel } = await import(join(root, "dist/cjs/tools/synth.js"));
  const { quantize } = await import(join(root, "dist/cjs/index.js"));
  const f16 = join(benchDir, "llama3-1b-f16.gguf");
  if (!existsSync(f16)) {
    console.error("[bench] writing the llama3-1b F16 model (random weights, Llama 3 tokenizer)");
    await synthesizeModel({ shape: "llama3-1b", vocabPath: join(root, "vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf"), outPath: f16, type: "f16", seed: 1 });
  }
  console.error("[bench] quantizing to Q4_0");
  await quantize(f16, q4, { type: "Q4_0" });
  return q4;
}

/**
 * A greedy streamed completion with end of text banned: when it started, its first and last token,
 * how many, and the time between consecutive tokens (ms).
 */
export async function timeStream(llm, prompt, maxTokens) {
  const info = llm.model.info;
  const noEnd = { [info.eos]: -Infinity, ...(info.eot >= 0 ? { [info.eot]: -Infinity } : {}) };
  const start = performance.now();
  let first = 0;
  let last = 0;
  let count = 0;
  const intervals = [];
  for await (const chunk of llm.createCompletion(prompt, { maxTokens, temperature: 0, logitBias: noEnd, stream: true })) {
    if (chunk.choices[0].finish_reason) break;
    const now = performance.now();
    if (count++ === 0) first = now;
    else intervals.push(now - last);
    last = now;
  }
  return { start, first, last, count, intervals };
}

/** pp: the whole prompt up to its first token; tg: then `maxTokens` more. */
export async function measureOnce(llm, prompt, maxTokens = 64) {
  const t = await timeStream(llm, prompt, maxTokens);
  return { pp: prompt.length / ((t.first - t.start) / 1000), tg: (t.count - 1) / ((t.last - t.first) / 1000) };
}

/**
 * `reps` paired runs (after one warm-up round) of the Llamas in `engines` ({ name: llm }), taking
 * turns; each round's prompt is BOS plus `promptLength - 1` tokens starting at another token, so
 * that none of it is in any KV cache already. Returns each engine's runs.
 */
export async function pairedRuns(engines, reps, { promptLength = 256, maxTokens = 64 } = {}) {
  const names = Object.keys(engines);
  const any = engines[names[0]];
  const text = any.tokenize("A long history of the valley and its people. ".repeat(60), { addBos: false });
  const runs = Object.fromEntries(names.map((name) => [name, []]));
  for (let r = 0; r < reps + 1; r++) {
    const prompt = [any.model.info.bos, ...text.slice(r, r + promptLength - 1)];
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + r) % names.length];
      const figures = await measureOnce(engines[name], prompt, maxTokens);
      if (r > 0) runs[name].push(figures);
    }
  }
  return runs;
}

export const mean = (xs) => xs.reduce((sum, x) => sum + x, 0) / xs.length;
export const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Mean tokens/s of one engine's runs. */
export const meanOf = (runs, name, key) => mean(runs[name].map((x) => x[key]));
/** The median over paired runs of a / b. */
export const medianRatio = (runs, a, b, key) => median(runs[a].map((x, i) => x[key] / runs[b][i][key]));
