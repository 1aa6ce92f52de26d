#!/usr/bin/env node
// Benchmark (not a test): prompt and generation speed of the generated 1B-shaped Q4_0 model run
// locally vs split over two rpc-servers on loopback (all layers offloaded, half to each), in one run.
// On one machine the split can only be slower (the same cores plus the network hops): the figure
// is the cost of the protocol, for the README.
//   node scripts/bench-rpc.mjs [--threads 2] [--reps 3]
// Needs the model made by scripts/bench-completion.mjs (.bench/llama3-1b-q4_0.gguf) and dist/.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const threads = Number(option("--threads", "2"));
const reps = Number(option("--reps", "3"));
const model = join(root, ".bench", "llama3-1b-q4_0.gguf");
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

async function measure(options) {
  const llm = await Llama.load({ modelPath: model, nCtx: 1024, nThreads: threads, ...options });
  const info = llm.model.info;
  const noEnd = { [info.eos]: -Infinity, ...(info.eot >= 0 ? { [info.eot]: -Infinity } : {}) };
  const prompt = llm.tokenize("A long history of the valley and its people. ".repeat(40)).slice(0, 256);
  const pp = [];
  const tg = [];
  for (let r = 0; r < reps + 1; r++) {
    const start = performance.now();
    let first = 0;
    let last = 0;
    let n = 0;
    for await (const c of llm.createCompletion(prompt, { maxTokens: 64, temperature: 0, logitBias: noEnd, stream: true })) {
      if (c.choices[0].finish_reason) break;
      last = performance.now();
      if (n++ === 0) first = last;
    }
    if (r === 0) continue; // warm-up
    pp.push(prompt.length / ((first - start) / 1000));
    tg.push((n - 1) / ((last - first) / 1000));
  }
  await llm.dispose();
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { pp: mean(pp), tg: mean(tg) };
}

const ports = [50152, 50153];
const servers = ports.map(startServer);
try {
  await Promise.all(ports.map(waitForPort));
  const local = await measure({});
  const split = await measure({ rpcServers: ports.map((p) => `127.0.0.1:${p}`), nGpuLayers: -1, tensorSplit: [1, 1] });
  console.log(`| run | pp256 t/s | tg64 t/s |`);
  console.log(`|---|---|---|`);
  console.log(`| local CPU, ${threads} threads | ${local.pp.toFixed(1)} | ${local.tg.toFixed(1)} |`);
  console.log(`| split over 2 loopback rpc-servers | ${split.pp.toFixed(1)} | ${split.tg.toFixed(1)} |`);
  console.log(`split / local: pp ${(split.pp / local.pp).toFixed(2)}x, tg ${(split.tg / local.tg).toFixed(2)}x`);
} finally {
  for (const s of servers) s.kill("SIGKILL");
}
