#!/usr/bin/env node
// Benchmark (not a test): speculative decoding side by side with plain generation, in one run:
// tokens/s and the share of drafted tokens accepted, for plain, n-gram drafting and a draft model,
// with llama.cpp's own llama-speculative-simple (draft model) and llama-lookup (n-gram cache), built
// from the vendored source, on the same models and prompts as anchors.
//   node scripts/bench-speculative.mjs [--rounds 3] [--threads 2] [--tokens 256]
// Cases: the generated 1B-shaped Q4_0 model (random weights), greedy with a negative frequency
// penalty, which makes its output fall into a loop that n-gram lookup predicts (acceptance high;
// without the penalty its output never repeats, and nothing is drafted: a case of its own); at
// temperature 1 (acceptance near zero: drafting must back off); the trained stories260K retelling a
// story given in its prompt. The 1B model's
// draft model is a generated 4-layer, 256-wide model with the same vocabulary: random weights agree
// with the target almost never, which measures what a useless draft costs. stories260K's draft is its
// own Q8_0 quantization. Engines take turns within a round; a ratio is the median of the rounds' ratios.
// Needs: npm run build && node scripts/build-ts.mjs.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchDir, cliOption as option, ensureBenchModel, llamaCppTool, median } from "./paired-speed.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const rounds = Number(option("--rounds", "3"));
const threads = Number(option("--threads", "2"));
const tokens = Number(option("--tokens", "256"));
const N_DRAFT = 16;

const lib = await import(join(root, "dist/cjs/index.js"));
const { synthesizeModel } = await import(join(root, "dist/cjs/tools/synth.js"));

/** A small model with the 1B model's vocabulary (Llama 3's), random weights: a draft that rarely agrees. */
async function ensureDraftModel() {
  const q4 = join(benchDir, "llama3-draft-tiny-q4_0.gguf");
  if (existsSync(q4)) return q4;
  const f16 = join(benchDir, "llama3-draft-tiny-f16.gguf");
  await synthesizeModel({ shape: "tiny", vocabPath: join(root, "vendor/llama.cpp/models/ggml-vocab-llama-bpe.gguf"), outPath: f16, type: "f16", seed: 7 });
  await lib.quantize(f16, q4, { type: "Q4_0" });
  return q4;
}

async function ensureStoriesDraft(stories) {
  const q8 = join(benchDir, "stories260K-q8_0.gguf");
  if (!existsSync(q8)) await lib.quantize(stories, q8, { type: "Q8_0" });
  return q8;
}

const STORY =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max. " +
  "One day, she saw a big, red ball under a tree. She ran to get it, but Max got there first. Lily laughed and they played all day. " +
  "At night, Lily told her mom about the ball and the park. Her mom smiled and said it was a good day.\n" +
  "Once upon a time, there was a little girl named Lily.";

/** One generation: tokens/s from the first token to the last, and the draft counts. */
async function measure(llm, prompt, sampling, seed) {
  const info = llm.model.info;
  const noEnd = { [info.eos]: -Infinity, ...(info.eot >= 0 ? { [info.eot]: -Infinity } : {}) };
  let first = 0;
  let last = 0;
  let count = 0;
  let usage;
  const stream = llm.createCompletion(prompt, { maxTokens: tokens, ...sampling, seed, logitBias: noEnd, stream: true, streamOptions: { includeUsage: true } });
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices[0]?.text) continue;
    const now = performance.now();
    if (count === 0) first = now;
    last = now;
    count++;
  }
  // A chunk may carry several tokens: count tokens, not chunks.
  const generated = usage?.completion_tokens ?? count;
  return { tps: (generated - 1) / ((last - first) / 1000), drafted: usage?.draft_tokens ?? 0, accepted: usage?.draft_accepted ?? 0 };
}

/** Two requests at once on a Llama with nParallel 2: aggregate tokens/s, and the draft counts. */
async function measurePair(llm, prompts, sampling) {
  const start = performance.now();
  const results = await Promise.all(prompts.map((prompt) => llm.createCompletion(prompt, { maxTokens: tokens, ...sampling })));
  const seconds = (performance.now() - start) / 1000;
  const sum = (key) => results.reduce((n, r) => n + (r.usage[key] ?? 0), 0);
  return { tps: sum("completion_tokens") / seconds, drafted: sum("draft_tokens"), accepted: sum("draft_accepted") };
}

/** llama.cpp's figures from a speculative example's log: decode speed and acceptance. */
function anchor(tool, toolArgs) {
  const out = execFileSync("sh", ["-c", '"$0" "$@" 2>&1', llamaCppTool(tool), ...toolArgs], { encoding: "utf8", maxBuffer: 1 << 26 });
  const speed = /decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t\/s/.exec(out);
  const drafted = /n_drafted\s*=\s*(\d+)/.exec(out);
  const accepted = /n_accept\s*=\s*(\d+)/.exec(out);
  if (!speed) throw new Error(`${tool} printed no speed:\n${out.slice(-2000)}`);
  return { tps: Number(speed[1]), drafted: Number(drafted?.[1] ?? 0), accepted: Number(accepted?.[1] ?? 0) };
}

async function main() {
  const big = await ensureBenchModel();
  const bigDraft = await ensureDraftModel();
  const stories = join(root, "..", "shared", "models", "stories260K.gguf");
  const storiesDraft = await ensureStoriesDraft(stories);
  const load = (modelPath, draft) => lib.Llama.load({ modelPath, nCtx: 2048, nBatch: 512, nThreads: threads, draft });
  const opening = "The history of the city begins";
  const cases = [
    { name: "1B Q4_0, greedy, frequency penalty -1.5 (loops)", model: big, draftModel: bigDraft, prompt: opening, sampling: { temperature: 0, frequencyPenalty: -1.5 } },
    { name: "1B Q4_0, greedy (never repeats)", model: big, draftModel: bigDraft, prompt: opening, sampling: { temperature: 0 } },
    { name: "1B Q4_0, temperature 1", model: big, draftModel: bigDraft, prompt: opening, sampling: { temperature: 1 } },
    { name: "stories260K retelling, greedy", model: stories, draftModel: storiesDraft, prompt: STORY, sampling: { temperature: 0 } },
  ];
  const table = [];
  for (const c of cases) {
    const engines = {
      plain: await load(c.model),
      ngram: await load(c.model, { type: "ngram", nDraft: N_DRAFT }),
      model: await load(c.model, { modelPath: c.draftModel, nDraft: N_DRAFT }),
    };
    const runs = { plain: [], ngram: [], model: [] };
    // Warm-up: one short generation each.
    for (const llm of Object.values(engines)) await llm.createCompletion("Hello", { maxTokens: 8 });
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ["plain", "ngram", "model"] : ["model", "ngram", "plain"];
      for (const name of order) runs[name].push(await measure(engines[name], c.prompt, c.sampling, 100 + round));
      console.error(`[bench] ${c.name} round ${round + 1}/${rounds}: ${order.map((n) => `${n} ${runs[n].at(-1).tps.toFixed(1)} t/s`).join(", ")}`);
    }
    for (const llm of Object.values(engines)) await llm.dispose();
    const common = ["-m", c.model, "-p", c.prompt, "-n", String(tokens), "-t", String(threads), "-c", "2048", "--temp", String(c.sampling.temperature), "-s", "100"];
    if (c.sampling.frequencyPenalty !== undefined) common.push("--frequency-penalty", String(c.sampling.frequencyPenalty));
    const anchors =
      c.sampling.temperature === 0
        ? {
            lookup: anchor("llama-lookup", [...common, "--spec-draft-n-max", String(N_DRAFT)]),
            speculative: anchor("llama-speculative-simple", [...common, "-md", c.draftModel, "-td", String(threads), "--spec-type", "draft-simple", "--spec-draft-n-max", String(N_DRAFT), "--draft-p-min", "0.75"]),
          }
        : {};
    table.push({ case: c, runs, anchors });
  }
  {
    // Sequences decoded together draft into the shared batch.
    const c = { name: "1B Q4_0, 2 requests at once (nParallel 2), frequency penalty -1.5", sampling: { temperature: 0, frequencyPenalty: -1.5 } };
    const pair = ["The history of the city begins", "Once upon a time"];
    const engines = {
      plain: await lib.Llama.load({ modelPath: big, nCtx: 1024, nThreads: threads, nParallel: 2 }),
      ngram: await lib.Llama.load({ modelPath: big, nCtx: 1024, nThreads: threads, nParallel: 2, draft: { type: "ngram", nDraft: N_DRAFT } }),
      model: await lib.Llama.load({ modelPath: big, nCtx: 1024, nThreads: threads, nParallel: 2, draft: { modelPath: bigDraft, nDraft: N_DRAFT } }),
    };
    const runs = { plain: [], ngram: [], model: [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ["plain", "ngram", "model"] : ["model", "ngram", "plain"];
      for (const name of order) runs[name].push(await measurePair(engines[name], pair, c.sampling));
      console.error(`[bench] ${c.name} round ${round + 1}/${rounds}: ${order.map((n) => `${n} ${runs[n].at(-1).tps.toFixed(1)} t/s`).join(", ")}`);
    }
    for (const llm of Object.values(engines)) await llm.dispose();
    table.push({ case: c, runs, anchors: {} });
  }

  const rate = (xs) => {
    const drafted = xs.reduce((n, x) => n + x.drafted, 0);
    return drafted === 0 ? "–" : `${((100 * xs.reduce((n, x) => n + x.accepted, 0)) / drafted).toFixed(0)} %`;
  };
  const ratio = (runs, name) => {
    const xs = runs[name].map((x, i) => x.tps / runs.plain[i].tps);
    return `${median(xs).toFixed(2)}x (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  };
  console.log(`speculative decoding, ${tokens} tokens, ${threads} threads, nDraft ${N_DRAFT}, ${rounds} rounds (median; lowest–highest)\n`);
  console.log("| case | engine | tokens/s | vs plain | drafts accepted |");
  console.log("|---|---|---|---|---|");
  for (const { case: c, runs, anchors } of table) {
    const tps = (name) => median(runs[name].map((x) => x.tps)).toFixed(1);
    console.log(`| ${c.name} | llama-napi plain | ${tps("plain")} | 1.00x | – |`);
    console.log(`| | llama-napi draft: ngram | ${tps("ngram")} | ${ratio(runs, "ngram")} | ${rate(runs.ngram)} |`);
    console.log(`| | llama-napi draft: model | ${tps("model")} | ${ratio(runs, "model")} | ${rate(runs.model)} |`);
    for (const [name, a] of Object.entries(anchors)) {
      const tool = name === "lookup" ? "llama-lookup (n-gram cache)" : "llama-speculative-simple (draft model)";
      console.log(`| | ${tool} | ${a.tps.toFixed(1)} | ${(a.tps / median(runs.plain.map((x) => x.tps))).toFixed(2)}x | ${a.drafted ? `${((100 * a.accepted) / a.drafted).toFixed(0)} %` : "–"} |`);
    }
  }
  console.log("\nTargets: >= 1.8x plain at >= 70 % acceptance (1B greedy, n-gram); >= 0.97x where nothing is accepted (temperature 1).");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
