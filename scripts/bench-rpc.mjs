#!/usr/bin/env node
// Benchmark (not a test): prompt and generation speed of the generated 1B-shaped Q4_0 model run
// locally vs split over two rpc-servers on loopback (all layers offloaded, half to each), in one run.
// On one machine the split can only be slower (the same cores plus the network hops): the figure
// is the cost of the protocol, for the README.
//   node scripts/bench-rpc.mjs [--threads 2] [--reps 5]
// Needs the model made by scripts/bench-completion.mjs (.bench/llama3-1b-q4_0.gguf) and dist/.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const threads = Number(option("--threads", "2"));
const reps = Number(option("--reps", "5"));
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

/** One prompt and generation: pp over the whole prompt up to its first token, then tg. */
async function measureOnce(llm, prompt) {
  const info = llm.model.info;
  const noEnd = { [info.eos]: -Infinity, ...(info.eot >= 0 ? { [info.eot]: -Infinity } : {}) };
  const start = performance.now();
  let first = 0;
  let last = 0;
  let n = 0;
  for await (const c of llm.createCompletion(prompt, { maxTokens: 64, temperature: 0, logitBias: noEnd, stream: true })) {
    if (c.choices[0].finish_reason) break;
    last = performance.now();
    if (n++ === 0) first = last;
  }
  return { pp: prompt.length / ((first - start) / 1000), tg: (n - 1) / ((last - first) / 1000) };
}

const ports = [50152, 50153];
const servers = ports.map(startServer);
try {
  await Promise.all(ports.map(waitForPort));
  const local = await Llama.load({ modelPath: model, nCtx: 1024, nThreads: threads });
  const split = await Llama.load({ modelPath: model, nCtx: 1024, nThreads: threads, rpcServers: ports.map((p) => `127.0.0.1:${p}`), nGpuLayers: -1, tensorSplit: [1, 1] });
  const text = local.tokenize("A long history of the valley and its people. ".repeat(40), { addBos: false });
  const runs = { local: [], split: [] };
  // The two take turns, so that the machine's drift hits both; each run's prompt starts at another
  // token, so that none of it is in the KV cache already.
  for (let r = 0; r < reps + 1; r++) {
    const prompt = [local.model.info.bos, ...text.slice(r, r + 255)];
    for (const [name, llm] of r % 2 === 0 ? [["local", local], ["split", split]] : [["split", split], ["local", local]]) {
      const figures = await measureOnce(llm, prompt);
      if (r > 0) runs[name].push(figures); // the first round warms up
    }
  }
  await local.dispose();
  await split.dispose();
  const mean = (name, key) => runs[name].reduce((sum, x) => sum + x[key], 0) / runs[name].length;
  const ratios = (key) => runs.split.map((x, i) => x[key] / runs.local[i][key]).sort((a, b) => a - b);
  const median = (xs) => (xs.length % 2 ? xs[xs.length >> 1] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2);
  console.log(`| run | pp256 t/s | tg64 t/s |`);
  console.log(`|---|---|---|`);
  console.log(`| local CPU, ${threads} threads | ${mean("local", "pp").toFixed(1)} | ${mean("local", "tg").toFixed(1)} |`);
  console.log(`| split over 2 loopback rpc-servers | ${mean("split", "pp").toFixed(1)} | ${mean("split", "tg").toFixed(1)} |`);
  console.log(`split / local, median of ${reps} paired runs: pp ${median(ratios("pp")).toFixed(2)}x, tg ${median(ratios("tg")).toFixed(2)}x`);
} finally {
  for (const s of servers) s.kill("SIGKILL");
}
