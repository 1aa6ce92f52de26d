#!/usr/bin/env node
// For a session lent the GPU machine (the device tool): the generated Llama 3.2 1B-shaped Q4_0
// model fully offloaded (nGpuLayers -1) against the same model on the CPU, taking turns; prints the
// binary in use, the GPUs found, both speeds and their ratio. Exits 1 when no GPU is in use.
//   node scripts/gpu-check.mjs [--model FILE] [--reps 3] [--threads N]
// Needs dist/ and a CUDA build (prebuilds/linux-x64/cuda, or LLAMA_NAPI_BINARY); makes the model
// (.bench/llama3-1b-q4_0.gguf, a minute on 16 cores) when --model is not given.
import { cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureBenchModel, meanOf, medianRatio, pairedRuns } from "./paired-speed.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const reps = Number(option("--reps", "3"));
const threads = Number(option("--threads", String(Math.min(8, cpus().length))));
const { Llama, buildInfo } = await import(join(root, "dist/cjs/index.js"));

const model = option("--model", undefined) ?? (await ensureBenchModel());
const info = buildInfo();
console.log(`binary ${info.binaryKind} ${info.binaryPath}; backends ${info.backends.join(", ")}; GPUs ${JSON.stringify(info.gpuDevices)}`);
const cpu = await Llama.load({ modelPath: model, nCtx: 2048, nThreads: threads, nGpuLayers: 0 });
const gpu = await Llama.load({ modelPath: model, nCtx: 2048, nThreads: threads, nGpuLayers: -1 });
const runs = await pairedRuns({ cpu, gpu }, reps, { promptLength: 512, maxTokens: 128 });
await cpu.dispose();
await gpu.dispose();
console.log(`| run | pp512 t/s | tg128 t/s |`);
console.log(`|---|---|---|`);
console.log(`| CPU, ${threads} threads | ${meanOf(runs, "cpu", "pp").toFixed(1)} | ${meanOf(runs, "cpu", "tg").toFixed(1)} |`);
console.log(`| all layers on the GPU | ${meanOf(runs, "gpu", "pp").toFixed(1)} | ${meanOf(runs, "gpu", "tg").toFixed(1)} |`);
console.log(`GPU / CPU, median of ${reps} paired runs: pp ${medianRatio(runs, "gpu", "cpu", "pp").toFixed(2)}x, tg ${medianRatio(runs, "gpu", "cpu", "tg").toFixed(2)}x`);
process.exit(info.gpuDevices.length > 0 ? 0 : 1);
