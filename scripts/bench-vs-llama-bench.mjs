#!/usr/bin/env node
// Checks bench()'s speed figures against llama.cpp's own llama-bench, built from the vendored
// source in the addon's CMake tree: same models, same settings (pp512, tg128, 5 runs, 2 threads by
// default), the two tools taking turns on each model so that drift in the machine's load hits both.
// The model is a generated Llama 3.2 1B (random weights, real shapes, Llama 3 vocabulary) and its
// quantizations, made with llama-napi's synthesizer and quantizer when missing (in .bench/quant).
// This VM's speed drifts by 2x within minutes, so each round runs one repetition of each tool,
// back to back in fresh processes, and the verdict is on the median of the rounds' ratios.
// Prints a table of tokens per second and the ratio llama-napi / llama-bench; exits 1 when a ratio
// is off by more than the tolerance (3 %).
//   flock /tmp/llama-napi-build.lock cmake --build build/cmake --target llama-bench   (once)
//   node scripts/bench-vs-llama-bench.mjs [--types F16,Q8_0,Q4_0] [--rounds 15] [--reps 1] [--threads 2] [--json FILE]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { compiledLibrary } from "./compiled-lib.mjs";
import { mean, median } from "./paired-speed.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    types: { type: "string", default: "F16,Q8_0,Q4_0" },
    rounds: { type: "string", default: "15" },
    reps: { type: "string", default: "1" },
    threads: { type: "string", default: "2" },
    "n-prompt": { type: "string", default: "512" },
    "n-gen": { type: "string", default: "128" },
    tolerance: { type: "string", default: "0.03" },
    json: { type: "string" },
  },
});
const settings = {
  nPrompt: Number(values["n-prompt"]),
  nGen: Number(values["n-gen"]),
  repetitions: Number(values.reps),
  threads: Number(values.threads),
  nBatch: 2048,
  nUbatch: 512,
};
const rounds = Number(values.rounds);
const tolerance = Number(values.tolerance);

const llamaBench = join(root, "build", "cmake", "bin", "llama-bench");
if (!existsSync(llamaBench)) {
  console.error(`${llamaBench} is missing: flock /tmp/llama-napi-build.lock cmake --build build/cmake --target llama-bench`);
  process.exit(1);
}

// A private compiled copy of lib/: the shared dist/ and addon may be rebuilt during a long run.
const { lib, env } = compiledLibrary();
Object.assign(process.env, env); // the measuring children load the same addon copy
const require = createRequire(import.meta.url);
const { quantize, measureSpeed, buildInfo } = require(join(lib, "index.js"));
const { synthesizeModel } = require(join(lib, "tools/synth.js"));

const dir = join(root, ".bench", "quant");
mkdirSync(dir, { recursive: true });
const base = join(dir, "llama3-1b-f16.gguf");
if (!existsSync(base)) {
  console.error(`generating ${base} (Llama 3.2 1B shapes, random F16 weights)`);
  await synthesizeModel({ shape: "llama3-1b", vocabPath: join(root, "vendor", "llama.cpp", "models", "ggml-vocab-llama-bpe.gguf"), outPath: base, type: "f16" });
}
const models = [];
for (const type of values.types.split(",").map((t) => t.trim().toUpperCase())) {
  const path = type === "F16" ? base : join(dir, `llama3-1b-${type}.gguf`);
  if (!existsSync(path)) {
    console.error(`quantizing ${path}`);
    await quantize(base, path, { type, threads: settings.threads });
  }
  models.push({ type, path });
}

function runLlamaBench(path) {
  const args = ["-m", path, "-p", String(settings.nPrompt), "-n", String(settings.nGen), "-r", String(settings.repetitions)];
  args.push("-t", String(settings.threads), "-b", String(settings.nBatch), "-ub", String(settings.nUbatch), "-o", "json");
  const tests = JSON.parse(execFileSync(llamaBench, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }));
  return {
    pp: tests.find((t) => t.n_prompt > 0 && t.n_gen === 0),
    tg: tests.find((t) => t.n_gen > 0 && t.n_prompt === 0),
  };
}

async function runOurs(path) {
  const { pp, tg } = await measureSpeed(path, settings);
  return { pp, tg };
}

const load = () => loadavg()[0].toFixed(2);
console.error(
  `llama.cpp ${buildInfo().llamaCommit.slice(0, 7)}; ${settings.threads} threads; pp${settings.nPrompt}, tg${settings.nGen}, ` +
    `${settings.repetitions} runs, ${rounds} rounds per tool; load average ${load()}`,
);

// Per model and test: llama-bench's avg_ts of each round, and every run's tokens/s.
const rows = [];
for (const model of models) {
  const figures = { "llama-bench": { pp: [], tg: [] }, "llama-napi": { pp: [], tg: [] } };
  for (let round = 0; round < rounds; round++) {
    // Alternate who goes first, so that a trend in the machine's load affects both alike.
    const order = round % 2 === 0 ? ["llama-bench", "llama-napi"] : ["llama-napi", "llama-bench"];
    for (const tool of order) {
      const tests = tool === "llama-bench" ? runLlamaBench(model.path) : await runOurs(model.path);
      for (const test of ["pp", "tg"]) figures[tool][test].push(tests[test]);
      console.error(
        `${model.type} round ${round + 1} ${tool}: pp ${tests.pp.avg_ts.toFixed(2)} ± ${tests.pp.stddev_ts.toFixed(2)}, ` +
          `tg ${tests.tg.avg_ts.toFixed(2)} ± ${tests.tg.stddev_ts.toFixed(2)} t/s (load ${load()})`,
      );
    }
  }
  const row = { type: model.type };
  for (const test of ["pp", "tg"]) {
    const summary = (tool) => {
      const runs = figures[tool][test];
      return { mean: mean(runs.map((r) => r.avg_ts)), best: Math.max(...runs.flatMap((r) => r.samples_ts)) };
    };
    const theirs = summary("llama-bench");
    const ours = summary("llama-napi");
    const paired = figures["llama-napi"][test].map((r, i) => r.avg_ts / figures["llama-bench"][test][i].avg_ts);
    row[test] = { llamaBench: theirs, llamaNapi: ours, ratio: { mean: ours.mean / theirs.mean, paired: median(paired), best: ours.best / theirs.best }, rounds: paired };
  }
  rows.push(row);
}

const pct = (ratio) => `${ratio >= 1 ? "+" : ""}${((ratio - 1) * 100).toFixed(1)} %`;
const cell = (test) => `${test.llamaBench.mean.toFixed(2)} | ${test.llamaNapi.mean.toFixed(2)} | ${pct(test.ratio.mean)} | ${pct(test.ratio.paired)} | ${pct(test.ratio.best)}`;
const { nPrompt, nGen } = settings;
console.log(`\nmean: avg_ts averaged over rounds; paired: the median over rounds of each round's ratio; best: the fastest run of each tool`);
console.log(`| model | pp${nPrompt} llama-bench | pp${nPrompt} llama-napi | mean | paired | best | tg${nGen} llama-bench | tg${nGen} llama-napi | mean | paired | best |`);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) console.log(`| 1B ${r.type} | ${cell(r.pp)} | ${cell(r.tg)} |`);
if (values.json) writeFileSync(values.json, JSON.stringify({ settings, rounds, rows }, null, 2) + "\n");
// Verdict on the paired ratio: a busy machine slows single runs of either tool at random.
const outside = rows.filter((r) => Math.abs(r.pp.ratio.paired - 1) > tolerance || Math.abs(r.tg.ratio.paired - 1) > tolerance);
console.log(
  outside.length === 0
    ? `paired ratios within ${tolerance * 100} % of llama-bench's (load average ${load()})`
    : `outside ${tolerance * 100} %: ${outside.map((r) => r.type).join(", ")} (load average ${load()}: a busy machine makes single runs vary)`,
);
process.exit(outside.length === 0 ? 0 : 1);
