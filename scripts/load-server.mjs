#!/usr/bin/env node
// Load test of `llama-napi serve`: many concurrent streaming clients against servers with
// different --parallel settings, side by side. Reports aggregate generated tokens/s and time to
// first token for each, and checks that every response is complete (max_tokens tokens,
// finish_reason "length", [DONE]), carries one id throughout, and is the greedy text of its own
// prompt: token for token what the prompt gets alone, except where the two best tokens were tied
// to within batched rounding (~1e-4), after which a stream may legitimately go another way.
//
//   node scripts/load-server.mjs [--model FILE] [--clients 32] [--tokens 128] [--parallel 4,1]
//                                [--threads 1] [--ctx 256] [--rounds 1]
//
// Needs the compiled CLI (npm run build:ts). Not a test: the figures depend on the machine.
import { spawn } from "node:child_process";
import { request } from "node:http";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: join(root, "..", "shared", "models", "stories260K.gguf") },
    clients: { type: "string", default: "32" },
    tokens: { type: "string", default: "128" },
    parallel: { type: "string", default: "4,1" },
    threads: { type: "string", default: "1" },
    ctx: { type: "string", default: "256" },
    rounds: { type: "string", default: "1" },
  },
});
const clients = Number(values.clients);
const maxTokens = Number(values.tokens);
const parallels = values.parallel.split(",").map(Number);
const rounds = Number(values.rounds);

const subjects = ["Lily", "Ben", "a little dog", "Tom", "a bird", "Sue", "a big bear", "Max"];
const openings = ["Once upon a time", "One day", "There was", "In the park"];
const prompts = Array.from({ length: clients }, (_, i) => `${openings[i % openings.length]}, ${subjects[Math.floor(i / openings.length) % subjects.length]}`);
// Greedy, with the end-of-story token (2 in the Llama 2 vocabulary) banned: every response has
// exactly max_tokens tokens and one right text. With logprobs every token comes as its own chunk,
// with the two best alternatives.
const sampling = { max_tokens: maxTokens, temperature: 0, logit_bias: { 2: -100 }, logprobs: 2 };
// Batched and single-sequence decoding round differently by about 1e-4 in a logprob.
const TIE = 0.01;

function startServer(parallel) {
  const args = [join(root, "bin", "llama-napi.js"), "serve", "-m", values.model, "--port", "0", "--parallel", String(parallel)];
  args.push("-t", values.threads, "-c", values.ctx, "--max-queue", String(clients));
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr.setEncoding("utf8");
  return new Promise((resolveUrl, reject) => {
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const match = /at (http:\/\/[^ ]+)\/v1 /.exec(log);
      if (match) resolveUrl({ url: match[1], child });
    });
    child.once("exit", (code) => reject(new Error(`serve exited with ${code}: ${log}`)));
  });
}

function post(url, path, body, onData) {
  return new Promise((resolveResponse, reject) => {
    const req = request(`${url}${path}`, { method: "POST", agent: false, headers: { "Content-Type": "application/json" } }, (res) => {
      res.setEncoding("utf8");
      let text = "";
      res.on("data", (chunk) => {
        text += chunk;
        onData?.();
      });
      res.on("end", () => resolveResponse({ status: res.statusCode, text }));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** One streaming client: its tokens with their alternatives, and what is wrong with its stream. */
async function streamOne(url, prompt, startedAt) {
  let firstAt = null;
  const { status, text } = await post(url, "/v1/completions", { prompt, ...sampling, stream: true }, () => (firstAt ??= performance.now()));
  const problems = [];
  if (status !== 200) problems.push(`HTTP ${status}`);
  const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
  if (events.at(-1) !== "[DONE]") problems.push("no [DONE]");
  const chunks = events.filter((e) => e !== "[DONE]").map((e) => JSON.parse(e));
  if (new Set(chunks.map((c) => c.id)).size !== 1) problems.push("chunks of more than one response");
  const last = chunks.at(-1)?.choices[0];
  if (last?.finish_reason !== "length") problems.push(`finish_reason ${last?.finish_reason}`);
  const tokens = chunks.filter((c) => c.choices[0].logprobs).map((c) => ({ piece: c.choices[0].logprobs.tokens[0], top: c.choices[0].logprobs.top_logprobs[0] }));
  if (tokens.length !== maxTokens) problems.push(`${tokens.length} tokens, not ${maxTokens}`);
  return { tokens, ttft: firstAt - startedAt, problems };
}

/** Compares a stream's tokens with the prompt's solo run: "same", "tie" (a near-tie flipped), or a problem. */
function compare(streamed, solo) {
  const k = streamed.findIndex((t, i) => t.piece !== solo[i]?.piece);
  if (k < 0) return "same";
  const gap = (top) => Math.abs((top[streamed[k].piece] ?? -Infinity) - (top[solo[k].piece] ?? -Infinity));
  if (gap(streamed[k].top) < TIE && gap(solo[k].top) < TIE) return "tie";
  return `token ${k} is ${JSON.stringify(streamed[k].piece)}, alone ${JSON.stringify(solo[k].piece)}, and they were not tied`;
}

const percentile = (list, p) => [...list].sort((a, b) => a - b)[Math.min(list.length - 1, Math.floor((p / 100) * list.length))];

async function measure(parallel) {
  const { url, child } = await startServer(parallel);
  try {
    // Each prompt's own tokens, one request at a time.
    const solo = [];
    for (const prompt of prompts) {
      const { text } = await post(url, "/v1/completions", { prompt, ...sampling });
      const logprobs = JSON.parse(text).choices[0].logprobs;
      solo.push(logprobs.tokens.map((piece, i) => ({ piece, top: logprobs.top_logprobs[i] })));
    }
    const load = loadavg()[0];
    const startedAt = performance.now();
    const results = await Promise.all(prompts.map((prompt) => streamOne(url, prompt, startedAt)));
    const seconds = (performance.now() - startedAt) / 1000;
    const verdicts = results.map((r, i) => compare(r.tokens, solo[i]));
    const problems = results.flatMap((r, i) => [...r.problems, ...(verdicts[i] === "same" || verdicts[i] === "tie" ? [] : [verdicts[i]])].map((p) => `client ${i}: ${p}`));
    const ties = verdicts.filter((v) => v === "tie").length;
    const ttfts = results.map((r) => r.ttft);
    return { parallel, seconds, tokensPerSecond: (clients * maxTokens) / seconds, ttftP50: percentile(ttfts, 50), ttftP95: percentile(ttfts, 95), problems, ties, load };
  } finally {
    child.kill("SIGTERM");
  }
}

console.log(`${clients} streaming clients x ${maxTokens} tokens, ${values.model.split("/").pop()}, --threads ${values.threads} -c ${values.ctx}, ${cpus().length} CPUs`);
const rows = [];
for (let round = 0; round < rounds; round++) {
  for (const parallel of parallels) {
    const r = await measure(parallel);
    rows.push(r);
    const tied = r.ties === 0 ? "" : ` (${r.ties} went another way at a near-tie)`;
    const status = r.problems.length === 0 ? `all ${clients} complete, each its own prompt's greedy text${tied}` : `${r.problems.length} problems: ${r.problems.slice(0, 5).join("; ")}`;
    console.log(
      `--parallel ${String(parallel).padEnd(3)} ${r.tokensPerSecond.toFixed(0).padStart(6)} tokens/s aggregate  ` +
        `(${r.seconds.toFixed(2)} s; first token p50 ${r.ttftP50.toFixed(0)} ms, p95 ${r.ttftP95.toFixed(0)} ms; load ${r.load.toFixed(1)})  ${status}`,
    );
  }
}
process.exitCode = rows.every((r) => r.problems.length === 0) ? 0 : 1;
