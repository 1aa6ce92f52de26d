#!/usr/bin/env node
// Speed of the portable prebuild against this machine's own build, side by side:
//   node scripts/bench-prebuild.mjs [--rounds N] [--threads N] [--portable PATH] [--local PATH] [MODEL.gguf ...]
// Each measurement is a fresh process with LLAMA_NAPI_BINARY set to one of the two binaries; the
// two alternate round after round, so that load from other work on the machine falls on both alike.
// Prompt processing (a 128-token batch) and generation (32 single-token decodes), tokens per
// second, median over the rounds; the ratio is portable / local (1.00: as fast). Each is measured
// by the clock and by the process's CPU time: on a busy machine the clock counts time spent
// waiting for a core, while CPU time per token (with --threads 1, where no thread spins waiting for
// another) still compares the code alone.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const option = (flag, fallback) => {
  const i = args.indexOf(flag);
  if (i < 0) return fallback;
  const value = args[i + 1];
  args.splice(i, 2);
  return value;
};
const rounds = Number(option("--rounds", "5"));
const threads = Number(option("--threads", "2"));
const binaries = {
  portable: resolve(option("--portable", join(root, "prebuilds", `${process.platform}-${process.arch}`, "node.napi.glibc.node"))),
  local: resolve(option("--local", join(root, "build", "Release", "llama_napi.node"))),
};
const defaultModels = ["wide-2l-q4_0.gguf", "wide-2l-q8_0.gguf"].map((name) => join(root, "test", ".models", name));
const models = args.length > 0 ? args.map((path) => resolve(path)) : defaultModels;

for (const [name, path] of Object.entries(binaries)) {
  if (!existsSync(path)) {
    console.error(`${name} binary missing: ${path} (portable: npm run build:prebuild; local: npm run build)`);
    process.exit(1);
  }
}
for (const model of models) {
  if (!existsSync(model)) {
    console.error(`model missing: ${model} (the realistic-width test models: npx vitest run test/core/realistic.test.ts)`);
    process.exit(1);
  }
}
if (!existsSync(join(root, "dist", "cjs", "index.js"))) {
  console.error("dist/ missing: npm run build:ts");
  process.exit(1);
}

// One measurement, in the child: load, warm up once, then time a prompt batch and single-token steps.
const child = `
const { LlamaModel, buildInfo } = require(${JSON.stringify(join(root, "dist", "cjs", "index.js"))});
(async () => {
  const [modelPath, threads] = [process.argv[1], Number(process.argv[2])];
  const model = await LlamaModel.load(modelPath);
  const context = await model.createContext({ nCtx: 512, nBatch: 512, nThreads: threads, nThreadsBatch: threads });
  const prompt = Array.from({ length: 128 }, (_, i) => 100 + ((i * 37) % 1000));
  await context.decode({ tokens: prompt.slice(0, 16) });
  context.clear();
  const timed = async (run) => {
    const [wall, cpu] = [performance.now(), process.cpuUsage()];
    await run();
    const used = process.cpuUsage(cpu);
    return { wallS: (performance.now() - wall) / 1000, cpuS: (used.user + used.system) / 1e6 };
  };
  const pp = await timed(() => context.decode({ tokens: prompt }));
  const tg = await timed(async () => { for (let i = 0; i < 32; i++) await context.decode({ tokens: [200 + i] }); });
  console.log(JSON.stringify({
    pp: 128 / pp.wallS, ppCpu: 128 / pp.cpuS, tg: 32 / tg.wallS, tgCpu: 32 / tg.cpuS, cpuVariant: buildInfo().cpuVariant,
  }));
  await context.dispose();
  model.dispose();
})();`;

function measure(binary, model) {
  const env = { ...process.env, LLAMA_NAPI_BINARY: binary };
  const result = spawnSync(process.execPath, ["-e", child, model, String(threads)], { env, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`measurement failed for ${binary}:\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").pop());
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const loadBefore = loadavg()[0];
console.log(`portable: ${binaries.portable}\nlocal:    ${binaries.local}\n${rounds} rounds, ${threads} threads, load average ${loadBefore.toFixed(2)} at start`);
for (const model of models) {
  const runs = { portable: [], local: [] };
  for (let round = 0; round < rounds; round++) {
    // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
    const order = round % 2 === 0 ? ["portable", "local"] : ["local", "portable"];
    for (const name of order) runs[name].push(measure(binaries[name], model));
  }
  const summary = (name, key) => median(runs[name].map((run) => run[key]));
  console.log(`\n${model.split("/").pop()}  (CPU variant: portable ${runs.portable[0].cpuVariant}, local ${runs.local[0].cpuVariant})`);
  console.log("                         portable t/s   local t/s   portable/local");
  for (const [key, label] of [
    ["pp", "prompt 128, clock"],
    ["ppCpu", "prompt 128, CPU time"],
    ["tg", "generate 32, clock"],
    ["tgCpu", "generate 32, CPU time"],
  ]) {
    const [p, l] = [summary("portable", key), summary("local", key)];
    console.log(`${label.padEnd(23)} ${p.toFixed(1).padStart(13)} ${l.toFixed(1).padStart(11)} ${(p / l).toFixed(3).padStart(16)}`);
  }
}
console.log(`\nload average ${loadBefore.toFixed(2)} at start, ${loadavg()[0].toFixed(2)} at end (2 cores: above ~2 other work skews both)`);
