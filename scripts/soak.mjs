#!/usr/bin/env node
// Leak soak: load/dispose cycles of a model, then many short completions, sampling the resident
// set size as it goes. Prints the RSS slope after warm-up (least squares, bytes per cycle); a leak
// of even one small allocation per cycle shows as a steady positive slope.
//
//   node scripts/soak.mjs [--loads 1000] [--completions 10000] [--tokens 8] [--model path]
//                         [--max-load-slope 4096] [--max-completion-slope 512] [--json]
//
// Exit status 1 when a slope exceeds its limit (bytes per cycle).
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { compiledLibrary } from "./compiled-lib.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function parseArgs(argv) {
  const options = {
    loads: 1000,
    completions: 10_000,
    tokens: 8,
    model: join(resolve(process.env.LLAMA_NAPI_MODELS ?? join(root, "..", "shared", "models")), "stories260K.gguf"),
    maxLoadSlope: 4096,
    maxCompletionSlope: 512,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i];
    switch (argv[i]) {
      case "--loads": options.loads = Number(value()); break;
      case "--completions": options.completions = Number(value()); break;
      case "--tokens": options.tokens = Number(value()); break;
      case "--model": options.model = resolve(value()); break;
      case "--max-load-slope": options.maxLoadSlope = Number(value()); break;
      case "--max-completion-slope": options.maxCompletionSlope = Number(value()); break;
      case "--json": options.json = true; break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  return options;
}

// A full collection before each sample, so that the slope measures what is still reachable or
// leaked, not garbage waiting for the next GC.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");

function memory() {
  gc();
  return process.memoryUsage();
}

/** Least-squares slope of y over x. */
function slope(points) {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * Runs `cycle` `count` times, sampling RSS 50 times; the slope is fitted over the second half of
 * the run (the first half is warm-up: allocator arenas, V8's code and heap sizing, llama.cpp's
 * lazily built tables settle there).
 */
async function measure(label, count, cycle, log) {
  const every = Math.max(1, Math.floor(count / 50));
  const samples = [];
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    await cycle(i);
    if ((i + 1) % every === 0 || i === count - 1) {
      samples.push([i + 1, memory()]);
      if (samples.length % 10 === 0) log(`${label}: ${i + 1}/${count}, RSS ${(samples.at(-1)[1].rss / 2 ** 20).toFixed(1)} MiB`);
    }
  }
  const settled = samples.filter(([i]) => i > count / 2);
  const fit = (field) => Math.round(slope((settled.length >= 2 ? settled : samples).map(([i, m]) => [i, m[field]])));
  return {
    cycles: count,
    seconds: Math.round((performance.now() - started) / 100) / 10,
    rssStartMiB: +(samples[0][1].rss / 2 ** 20).toFixed(2),
    rssEndMiB: +(samples.at(-1)[1].rss / 2 ** 20).toFixed(2),
    slopeBytesPerCycle: fit("rss"),
    // The JavaScript heap's share of the slope: what remains is native memory (or V8's code space).
    heapSlopeBytesPerCycle: fit("heapUsed"),
    samplesMiB: samples.map(([i, m]) => [i, +(m.rss / 2 ** 20).toFixed(2)]),
  };
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const log = options.json ? () => {} : (line) => console.log(line);
  const library = compiledLibrary();
  Object.assign(process.env, library.env);
  const { LlamaModel, generateTokens } = createRequire(import.meta.url)(join(library.lib, "index.js"));

  // A private copy: its mappings are ours alone, whatever else runs on the machine.
  const scratch = mkdtempSync(join(tmpdir(), "llama-napi-soak-"));
  const modelPath = join(scratch, "model.gguf");
  copyFileSync(options.model, modelPath);
  try {
    const loads = await measure(
      "load/dispose",
      options.loads,
      async () => {
        const model = await LlamaModel.load(modelPath);
        model.tokenize("Once upon a time");
        model.dispose();
      },
      log,
    );

    const model = await LlamaModel.load(modelPath);
    const prompt = model.tokenize("Once upon a time");
    // One thread: on a busy machine ggml's pool spins at barriers and times nothing but the load.
    let context = await model.createContext({ nCtx: 128, nBatch: 64, nThreads: 1 });
    let generated = 0;
    const completions = await measure(
      "completions",
      options.completions,
      async (i) => {
        // A new context every 100 completions and a new sampler each time: the handles churn too.
        if (i > 0 && i % 100 === 0) {
          await context.dispose();
          context = await model.createContext({ nCtx: 128, nBatch: 64, nThreads: 1 });
        }
        context.clear();
        const sampler = model.createSampler({ seed: i, temperature: 0.8 });
        for await (const token of generateTokens(context, sampler, prompt, { maxTokens: options.tokens, stopAtEog: false })) {
          model.tokenBytes(token);
          generated++;
        }
        sampler.dispose();
      },
      log,
    );
    await context.dispose();
    model.dispose();

    const result = { model: options.model, loads, completions: { ...completions, tokensGenerated: generated } };
    const failures = [];
    if (loads.slopeBytesPerCycle > options.maxLoadSlope) failures.push(`load/dispose slope ${loads.slopeBytesPerCycle} B/cycle > ${options.maxLoadSlope}`);
    if (completions.slopeBytesPerCycle > options.maxCompletionSlope) {
      failures.push(`completion slope ${completions.slopeBytesPerCycle} B/cycle > ${options.maxCompletionSlope}`);
    }
    if (options.json) console.log(JSON.stringify({ ...result, failures }));
    else {
      const { samplesMiB: loadSamples, ...loadSummary } = loads;
      const { samplesMiB: completionSamples, ...completionSummary } = completions;
      console.log(`load/dispose RSS (MiB) by cycle: ${loadSamples.map(([i, m]) => `${i}:${m}`).join(" ")}`);
      console.log(`completion RSS (MiB) by cycle: ${completionSamples.map(([i, m]) => `${i}:${m}`).join(" ")}`);
      console.log(JSON.stringify({ ...result, loads: loadSummary, completions: { ...completionSummary, tokensGenerated: generated } }, null, 2));
      console.log(failures.length === 0 ? "RSS flat: no slope over its limit" : failures.join("\n"));
    }
    process.exitCode = failures.length === 0 ? 0 : 1;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
