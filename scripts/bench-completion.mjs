#!/usr/bin/env node
// Benchmark (not a test): streaming createCompletion against llama.cpp's llama-bench (same build,
// same model) and node-llama-cpp 3.21.1 (same llama.cpp release), on a generated 1B-shaped Q4_0
// model with 2 threads; and 4 parallel sequences against one, next to llama.cpp's own
// llama-batched-bench; and generation with n-gram speculative decoding (Llama.load's draft) against
// without. Prints ratios measured in one run.
//   node scripts/bench-completion.mjs [--rounds 9] [--threads 2] [--model file.gguf]
// As llama-bench measures: pp is a 512-token prompt's time to its first token, tg is 128 tokens
// generated from an (almost) empty cache, greedy, end of text banned. This VM stalls single tokens
// by up to 10x at random, so the typical token's speed is printed beside: the median of the
// stream's token intervals against the median of 128 single-token llama-bench runs.
// A shared machine's speed drifts by 2x within minutes, so the engines take turns: each round runs
// every engine once, in a fresh process, the engines compared back to back, and a ratio is the
// median of the rounds' ratios.
// Needs: npm run build && node scripts/build-ts.mjs; it builds llama-bench and llama-batched-bench
// and installs node-llama-cpp into .bench/nlc (git-ignored) on first use.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchDir, cliOption as option, ensureBenchModel, llamaCppTool, mean, median, timeStream } from "./paired-speed.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const rounds = Number(option("--rounds", "9"));
const threads = Number(option("--threads", "2"));
const PP = 512;
const TG = 128;

const stddev = (xs) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));


/** One llama-bench repetition of pp and tg. */
function llamaBench(model) {
  const out = execFileSync(llamaCppTool("llama-bench"), ["-m", model, "-t", String(threads), "-p", String(PP), "-n", String(TG), "-r", "1", "-o", "json"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const rows = JSON.parse(out);
  const pp = rows.find((r) => r.n_prompt === PP && r.n_gen === 0);
  const tg = rows.find((r) => r.n_gen === TG && r.n_prompt === 0);
  // The typical token: TG single-token generations, each timed on its own.
  const single = JSON.parse(
    execFileSync(llamaCppTool("llama-bench"), ["-m", model, "-t", String(threads), "-p", "0", "-n", "1", "-r", String(TG), "-o", "json"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }),
  )[0];
  return { pp: pp.avg_ts, tg: tg.avg_ts, tgMedian: 1e9 / median(single.samples_ns) };
}

/** llama.cpp's own continuous batching: aggregate generation of 4 sequences against 1. */
function llamaBatchedBench(model) {
  const out = execFileSync(
    llamaCppTool("llama-batched-bench"),
    ["-m", model, "-t", String(threads), "-c", "2048", "-b", "512", "-ub", "512", "-npp", "16", "-ntg", String(TG), "-npl", "1,4", "--output-format", "jsonl"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  );
  const rows = out.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
  return { single: rows.find((r) => r.pl === 1).speed_tg, aggregate: rows.find((r) => r.pl === 4).speed_tg };
}

// Each engine runs in its own process: `node bench-completion.mjs --child ours|nlc|parallel MODEL`.
async function childOurs(model, parallel, draft) {
  const { Llama } = await import(join(root, "dist/cjs/index.js"));
  const llm = await Llama.load({ modelPath: model, nCtx: 1024, nBatch: 512, nThreads: threads, nParallel: parallel ? 4 : 1, draft });
  const prompt = llm.tokenize("The history of the city begins in the early years of the settlement. ".repeat(60)).slice(0, PP);
  const run = (tokens, maxTokens) => timeStream(llm, tokens, maxTokens);
  // Warm-up as llama-bench's: a whole prompt's batch, then generation; on another text, so that
  // the prompt finds none of itself in the KV cache.
  await run(llm.tokenize("A warm-up line about something else entirely. ".repeat(60)).slice(0, PP), 8);
  if (!parallel) {
    // As llama-bench: pp is the whole prompt up to its first token, tg generates from an empty cache.
    const p = await run(prompt, 1);
    const t = await run(prompt.slice(0, 2), TG + 1);
    return { pp: PP / ((p.first - p.start) / 1000), tg: (t.count - 1) / ((t.last - t.first) / 1000), tgMedian: 1000 / median(t.intervals) };
  }
  // Generation throughput: 1 stream vs 4 concurrent streams, short prompts.
  const short = (i) => prompt.slice(i * 16, i * 16 + 16);
  const one = await run(short(0), TG);
  const four = await Promise.all([0, 1, 2, 3].map((i) => run(short(i + 1), TG)));
  const begin = Math.max(...four.map((t) => t.first));
  const end = Math.min(...four.map((t) => t.last));
  // Tokens each stream produced while all four were generating.
  const tokens = four.reduce((n, t) => n + ((t.count - 1) * (end - begin)) / (t.last - t.first), 0);
  return { single: (one.count - 1) / ((one.last - one.first) / 1000), aggregate: tokens / ((end - begin) / 1000) };
}

async function childNodeLlamaCpp(model) {
  const nlcDir = join(benchDir, "nlc");
  const { getLlama, LlamaCompletion } = await import(join(nlcDir, "node_modules/node-llama-cpp/dist/index.js"));
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
  const loaded = await llama.loadModel({ modelPath: model });
  const context = await loaded.createContext({ contextSize: 1024, batchSize: 512, threads });
  const sequence = context.getSequence();
  const completion = new LlamaCompletion({ contextSequence: sequence });
  const prompt = loaded.tokenize("The history of the city begins in the early years of the settlement. ".repeat(60)).slice(0, PP - 1);
  const promptText = loaded.detokenize(prompt);
  const run = async (text, maxTokens) => {
    await sequence.clearHistory();
    const start = performance.now();
    let first = 0;
    let last = 0;
    let count = 0;
    await completion.generateCompletion(text, {
      maxTokens,
      temperature: 0,
      onToken: () => {
        const now = performance.now();
        if (count === 0) first = now;
        last = now;
        count++;
      },
    });
    return { start, first, last, count };
  };
  await run("A warm-up line about something else entirely.", 8);
  const p = await run(promptText, 1);
  const t = await run(loaded.detokenize(prompt.slice(0, 1)), TG + 1);
  return { pp: PP / ((p.first - p.start) / 1000), tg: (t.count - 1) / ((t.last - t.first) / 1000) };
}

function inChild(kind, model) {
  const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", kind, model, "--threads", String(threads)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 24,
  });
  if (result.status !== 0) throw new Error(`${kind} benchmark failed`);
  return JSON.parse(result.stdout.trim().split("\n").at(-1));
}

async function main() {
  if (args[0] === "--child") {
    const [, kind, model] = args;
    const draft = kind === "speculative" ? { type: "ngram", nDraft: 16 } : undefined;
    const result = kind === "nlc" ? await childNodeLlamaCpp(model) : await childOurs(model, kind === "parallel", draft);
    console.log(JSON.stringify(result));
    return;
  }
  const model = option("--model") ?? (await ensureBenchModel());
  if (!existsSync(join(benchDir, "nlc/node_modules/node-llama-cpp"))) {
    mkdirSync(join(benchDir, "nlc"), { recursive: true });
    writeFileSync(join(benchDir, "nlc/package.json"), '{"name":"nlc-bench","private":true,"type":"module"}\n');
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "node-llama-cpp@3.21.1"], { cwd: join(benchDir, "nlc"), stdio: "inherit" });
  }
  console.error(`[bench] model ${model}, ${threads} threads, pp${PP} tg${TG}, ${rounds} rounds`);
  const engines = {
    reference: () => llamaBench(model),
    ours: () => inChild("ours", model),
    nlc: () => inChild("nlc", model),
    parallel: () => inChild("parallel", model),
    batched: () => llamaBatchedBench(model),
    speculative: () => inChild("speculative", model),
  };
  const runs = Object.fromEntries(Object.keys(engines).map((name) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    // Engines compared run back to back, llama-napi between the two others, and the order flips
    // every round, so that a trend in the machine's speed favours none of them.
    const order = ["reference", "ours", "speculative", "nlc", "parallel", "batched"];
    if (round % 2 === 1) order.reverse();
    for (const name of order) runs[name].push(engines[name]());
    const r = (name, key) => runs[name][round][key].toFixed(1);
    console.error(
      `[bench] round ${round + 1}/${rounds}: pp ${r("reference", "pp")} / ${r("ours", "pp")} / ${r("nlc", "pp")}, ` +
        `tg ${r("reference", "tg")} / ${r("ours", "tg")} / ${r("nlc", "tg")} (llama-bench / llama-napi / node-llama-cpp)`,
    );
  }
  const fmt = (name, key) => {
    const xs = runs[name].map((x) => x[key]);
    return `${mean(xs).toFixed(1)} ± ${stddev(xs).toFixed(1)}`;
  };
  /** The median over rounds of a / b, with the lowest and highest. */
  const ratio = (a, keyA, b, keyB = keyA) => {
    const xs = runs[a].map((x, i) => x[keyA] / runs[b][i][keyB]);
    return `${median(xs).toFixed(3)}x (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  };
  console.log(`| engine | pp${PP} t/s | tg${TG} t/s |`);
  console.log("|---|---|---|");
  console.log(`| llama-bench (same build) | ${fmt("reference", "pp")} | ${fmt("reference", "tg")} |`);
  console.log(`| llama-napi streaming createCompletion | ${fmt("ours", "pp")} | ${fmt("ours", "tg")} |`);
  console.log(`| llama-napi with n-gram drafting (draft: { type: "ngram" }) | ${fmt("speculative", "pp")} | ${fmt("speculative", "tg")} |`);
  console.log(`| node-llama-cpp 3.21.1 LlamaCompletion | ${fmt("nlc", "pp")} | ${fmt("nlc", "tg")} |`);
  console.log("");
  console.log(`Ratios, median of ${rounds} rounds (lowest–highest):`);
  console.log(`llama-napi / llama-bench:    pp ${ratio("ours", "pp", "reference")}   tg ${ratio("ours", "tg", "reference")}   (targets: pp >= 0.98x, tg >= 0.97x)`);
  console.log(
    `  the typical token (median token time; this VM stalls single tokens up to 10x): tg ${ratio("ours", "tgMedian", "reference")} ` +
      `(${fmt("ours", "tgMedian")} vs ${fmt("reference", "tgMedian")} t/s)`,
  );
  console.log(`llama-napi / node-llama-cpp: pp ${ratio("ours", "pp", "nlc")}   tg ${ratio("ours", "tg", "nlc")}`);
  console.log(`n-gram drafting / plain:     tg ${ratio("speculative", "tg", "ours")} (tg${TG} from a 2-token prompt: little to look up; scripts/bench-speculative.mjs measures where drafts are taken)`);
  console.log(
    `4 parallel sequences / 1:    llama-napi ${ratio("parallel", "aggregate", "parallel", "single")} (${fmt("parallel", "aggregate")} vs ${fmt("parallel", "single")} t/s; target >= 2.5x), ` +
      `llama-batched-bench ${ratio("batched", "aggregate", "batched", "single")} (${fmt("batched", "aggregate")} vs ${fmt("batched", "single")} t/s)`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
