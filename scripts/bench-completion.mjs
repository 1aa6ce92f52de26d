#!/usr/bin/env node
// Benchmark (not a test): streaming createCompletion against llama.cpp's llama-bench (same build,
// same model) and node-llama-cpp 3.21.1 (same llama.cpp release), on a generated 1B-shaped Q4_0
// model with 2 threads; and 4 parallel sequences against one. Prints ratios measured in one run.
//   node scripts/bench-completion.mjs [--reps 3] [--threads 2]
// Needs: npm run build && node scripts/build-ts.mjs; it builds llama-bench and installs
// node-llama-cpp into .bench/nlc (git-ignored) on first use.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const benchDir = join(root, ".bench");
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const reps = Number(option("--reps", "3"));
const threads = Number(option("--threads", "2"));
const PP = 512;
const TG = 128;

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const stddev = (xs) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));

async function ensureModel() {
  const q4 = join(benchDir, "llama3-1b-q4_0.gguf");
  if (existsSync(q4)) return q4;
  mkdirSync(benchDir, { recursive: true });
  const { synthesizeModel } = await import(join(root, "dist/cjs/synth.js"));
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

function llamaBench(model) {
  const bin = join(root, "build/cmake/bin/llama-bench");
  if (!existsSync(bin)) execFileSync("cmake", ["--build", join(root, "build/cmake"), "--target", "llama-bench"], { stdio: "inherit" });
  const out = execFileSync(bin, ["-m", model, "-t", String(threads), "-p", String(PP), "-n", String(TG), "-r", String(reps), "-o", "json"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const rows = JSON.parse(out);
  const pp = rows.find((r) => r.n_prompt === PP && r.n_gen === 0);
  const tg = rows.find((r) => r.n_gen === TG && r.n_prompt === 0);
  return { pp: pp.avg_ts, ppSd: pp.stddev_ts, tg: tg.avg_ts, tgSd: tg.stddev_ts };
}

// Each engine runs in its own process: `node bench-completion.mjs --child ours|nlc|parallel MODEL`.
async function childOurs(model, parallel) {
  const { Llama } = await import(join(root, "dist/cjs/index.js"));
  const llm = await Llama.load({ modelPath: model, nCtx: 1024, nBatch: 512, nThreads: threads, nParallel: parallel ? 4 : 1 });
  const vocab = llm.model.info;
  const noEnd = { [vocab.eos]: -Infinity, ...(vocab.eot >= 0 ? { [vocab.eot]: -Infinity } : {}) };
  const prompt = llm.tokenize("The history of the city begins in the early years of the settlement. ".repeat(60)).slice(0, PP);
  const run = async (tokens, maxTokens) => {
    const start = performance.now();
    let first = 0;
    let last = 0;
    let count = 0;
    for await (const chunk of llm.createCompletion(tokens, { maxTokens, temperature: 0, logitBias: noEnd, stream: true })) {
      if (chunk.choices[0].finish_reason) break;
      const now = performance.now();
      if (count === 0) first = now;
      last = now;
      count++;
    }
    return { start, first, last, count };
  };
  await run(prompt.slice(0, 32), 8); // warm-up
  if (!parallel) {
    const pp = [];
    const tg = [];
    for (let r = 0; r < reps; r++) {
      const t = await run(prompt, TG);
      pp.push(PP / ((t.first - t.start) / 1000));
      tg.push((t.count - 1) / ((t.last - t.first) / 1000));
    }
    return { pp: mean(pp), ppSd: stddev(pp), tg: mean(tg), tgSd: stddev(tg) };
  }
  // Generation throughput: 1 stream vs 4 concurrent streams, short prompts.
  const short = (i) => prompt.slice(i * 16, i * 16 + 16);
  const single = [];
  const aggregate = [];
  for (let r = 0; r < reps; r++) {
    const one = await run(short(0), TG);
    single.push((one.count - 1) / ((one.last - one.first) / 1000));
    const four = await Promise.all([0, 1, 2, 3].map((i) => run(short(i + 1), TG)));
    const begin = Math.max(...four.map((t) => t.first));
    const end = Math.min(...four.map((t) => t.last));
    // Tokens each stream produced while all four were generating.
    const tokens = four.reduce((n, t) => n + ((t.count - 1) * (end - begin)) / (t.last - t.first), 0);
    aggregate.push(tokens / ((end - begin) / 1000));
  }
  return { single: mean(single), aggregate: mean(aggregate) };
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
  const text = loaded.detokenize(prompt);
  const run = async (maxTokens) => {
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
  await run(8);
  const pp = [];
  const tg = [];
  for (let r = 0; r < reps; r++) {
    const t = await run(TG);
    pp.push(PP / ((t.first - t.start) / 1000));
    tg.push((t.count - 1) / ((t.last - t.first) / 1000));
  }
  return { pp: mean(pp), ppSd: stddev(pp), tg: mean(tg), tgSd: stddev(tg) };
}

function inChild(kind, model) {
  const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", kind, model, "--reps", String(reps), "--threads", String(threads)], {
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
    const result = kind === "nlc" ? await childNodeLlamaCpp(model) : await childOurs(model, kind === "parallel");
    console.log(JSON.stringify(result));
    return;
  }
  const model = await ensureModel();
  if (!existsSync(join(benchDir, "nlc/node_modules/node-llama-cpp"))) {
    mkdirSync(join(benchDir, "nlc"), { recursive: true });
    writeFileSync(join(benchDir, "nlc/package.json"), '{"name":"nlc-bench","private":true,"type":"module"}\n');
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "node-llama-cpp@3.21.1"], { cwd: join(benchDir, "nlc"), stdio: "inherit" });
  }
  console.error(`[bench] model ${model}, ${threads} threads, pp${PP} tg${TG}, ${reps} repetitions`);
  const reference = llamaBench(model);
  const ours = inChild("ours", model);
  const nlc = inChild("nlc", model);
  const parallel = inChild("parallel", model);
  const fmt = (x, sd) => `${x.toFixed(1)} ± ${sd.toFixed(1)}`;
  console.log(`| engine | pp${PP} t/s | tg${TG} t/s |`);
  console.log("|---|---|---|");
  console.log(`| llama-bench (same build) | ${fmt(reference.pp, reference.ppSd)} | ${fmt(reference.tg, reference.tgSd)} |`);
  console.log(`| llama-napi streaming createCompletion | ${fmt(ours.pp, ours.ppSd)} | ${fmt(ours.tg, ours.tgSd)} |`);
  console.log(`| node-llama-cpp 3.21.1 LlamaCompletion | ${fmt(nlc.pp, nlc.ppSd)} | ${fmt(nlc.tg, nlc.tgSd)} |`);
  console.log("");
  console.log(`llama-napi / llama-bench:    pp ${(ours.pp / reference.pp).toFixed(3)}x   tg ${(ours.tg / reference.tg).toFixed(3)}x   (targets: pp >= 0.98x, tg >= 0.97x)`);
  console.log(`llama-napi / node-llama-cpp: pp ${(ours.pp / nlc.pp).toFixed(3)}x   tg ${(ours.tg / nlc.tg).toFixed(3)}x`);
  console.log(`4 parallel sequences / 1:    ${(parallel.aggregate / parallel.single).toFixed(2)}x aggregate generation (${parallel.aggregate.toFixed(1)} vs ${parallel.single.toFixed(1)} t/s; target >= 2.5x)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
