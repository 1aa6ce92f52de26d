#!/usr/bin/env node
// Benchmark (not a test): prompt and generation speed of the generated 1B-shaped Q4_0 model run
// locally vs split over two rpc-servers on loopback (all layers offloaded, half to each), in one run.
// On one machine the split can only be slower (the same cores plus the network hops): the figure
// is the cost of the protocol, for the README.
//   node scripts/bench-rpc.mjs [--threads 2] [--reps 5]
// Needs dist/; makes the model (.bench/llama3-1b-q4_0.gguf) on first use.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureBenchModel, meanOf, medianRatio, pairedRuns } from "./paired-speed.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const threads = Number(option("--threads", "2"));
const reps = Number(option("--reps", "5"));
const model = await ensureBenchModel();
const { Llama } = await import(join(root, "dist/cjs/index.js"));

async function waitForPort(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((done) => {
      const s = connect(port, "127.0.0.1", () => (s.destroy(), done(true)));
      s.on("error", () => done(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`rpc-server on ${port} did not start`);
}

function startServer(port) {
  const script = `require(${JSON.stringify(join(root, "dist/cjs/cli/rpc.js"))}).rpcServerCommand(["--port", "${port}", "--threads", "${threads}"])`;
  return spawn(process.execPath, ["-e", script], { stdio: "ignore" });
}

const ports = [50152, 50153];
const servers = ports.map(startServer);
try {
  await Promise.all(ports.map(waitForPort));
  const local = await Llama.load({ modelPath: model, nCtx: 1024, nThreads: threads });
  const split = await Llama.load({ modelPath: model, nCtx: 1024, nThreads: threads, rpcServers: ports.map((p) => `127.0.0.1:${p}`), nGpuLayers: -1, tensorSplit: [1, 1] });
  const runs = await pairedRuns({ local, split }, reps);
  await local.dispose();
  await split.dispose();
  console.log(`| run | pp256 t/s | tg64 t/s |`);
  console.log(`|---|---|---|`);
  console.log(`| local CPU, ${threads} threads | ${meanOf(runs, "local", "pp").toFixed(1)} | ${meanOf(runs, "local", "tg").toFixed(1)} |`);
  console.log(`| split over 2 loopback rpc-servers | ${meanOf(runs, "split", "pp").toFixed(1)} | ${meanOf(runs, "split", "tg").toFixed(1)} |`);
  console.log(
    `split / local, median of ${reps} paired runs: pp ${medianRatio(runs, "split", "local", "pp").toFixed(2)}x, tg ${medianRatio(runs, "split", "local", "tg").toFixed(2)}x`,
  );
} finally {
  for (const s of servers) s.kill("SIGKILL");
}
