#!/usr/bin/env node
// Malformed and hostile requests against `llama-napi serve`: random bodies (bad JSON, wrong types,
// media parts with hostile URLs or broken files, out-of-range numbers, deep nesting, odd tokens, hostile slot file names, unknown actions and slot
// ids) sent to every route, OpenAI's and llama-server's, with and without the API key. Every answer
// must be JSON (or /metrics' Prometheus text), an error in OpenAI's shape ({ error: { message, type } }) whenever the status is 400
// or more, and never a 5xx but 501 (infill without FIM tokens, slots without --slot-save-path,
// reranking without a reranker); the server must still answer /health every 50 requests, and no
// file may appear beside the slot directory. Exit status 1 when any request broke a rule.
//
//   node scripts/fuzz-server.mjs [--ops 2000] [--seed 1] [--model path]
//
// The tests run a short round through fuzzServer() against a server of their own.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Random } from "./gguf-mutate.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const ROUTES = [
  ["POST", "/v1/completions", ["prompt", "max_tokens", "temperature", "stop", "logit_bias", "seed", "suffix", "stream", "n_keep", "response_format"]],
  ["POST", "/v1/chat/completions", ["messages", "max_tokens", "tools", "tool_choice", "stream", "response_format", "chat_template_kwargs"]],
  ["POST", "/v1/embeddings", ["input", "encoding_format"]],
  ["POST", "/v1/responses", ["input", "instructions", "max_output_tokens", "temperature", "top_p", "stream", "tools", "tool_choice", "text"]],
  ["GET", "/metrics", []],
  ["POST", "/tokenize", ["content", "add_special", "parse_special", "with_pieces"]],
  ["POST", "/detokenize", ["tokens"]],
  ["POST", "/apply-template", ["messages", "tools", "reasoning_format", "chat_template_kwargs"]],
  ["POST", "/infill", ["input_prefix", "input_suffix", "input_extra", "prompt", "n_predict", "max_tokens", "stream", "temperature"]],
  ["POST", "/v1/rerank", ["query", "documents", "texts", "top_n", "return_text", "model"]],
  ["POST", "/reranking", ["query", "documents", "texts", "top_n", "return_text"]],
  ["POST", "/lora-adapters", []],
  ["GET", "/props", []],
  ["GET", "/v1/models", []],
  ["GET", "/health", []],
];

const HOSTILE_NAMES = ["../escape.bin", "..", ".", "/etc/passwd", "a/b", "a\\b", "x\u0000y", "", " a", "a.", "a:b", "C:\\x", "..\\x", "a\u2215b", "\uff0e\uff0e", "x".repeat(300), "\ud800", "\u001b[31m"];

// A PNG that declares 20000×20000 pixels, and one cut off after its header: neither may be decoded.
const PNG_SIGNATURE = "iVBORw0KGgo";
const HUGE_PNG = "iVBORw0KGgoAAAANSUhEUgAATiAAAE4gCAIAAABVaT+7AAAAAElFTkSuQmCC";
/** Image and audio parts a client may send: hostile URLs, broken or oversized files, wrong shapes. */
const MEDIA_PARTS = [
  { type: "image_url", image_url: { url: "file:///etc/passwd" } },
  { type: "image_url", image_url: { url: "file://../../etc/passwd" } },
  { type: "image_url", image_url: { url: "http://127.0.0.1:1/cat.png" } },
  { type: "image_url", image_url: { url: `data:image/png;base64,${HUGE_PNG}` } },
  { type: "image_url", image_url: { url: `data:image/png;base64,${PNG_SIGNATURE}` } },
  { type: "image_url", image_url: { url: "data:," } },
  { type: "image_url", image_url: { url: "not a url at all!" } },
  { type: "image_url", image_url: "data:image/png;base64,AAAA" },
  { type: "image_url" },
  { type: "input_audio", input_audio: { data: "UklGRiQAAABXQVZF", format: "wav" } },
  { type: "input_audio", input_audio: { data: "AAAA", format: "ogg" } },
  { type: "input_audio", input_audio: { data: 5 } },
  { type: "video_url", video_url: { url: "x" } },
];

/** A random JSON value, sometimes nested deeply. */
function value(rng, depth = 0) {
  const kind = rng.int(depth > 3 ? 7 : 10);
  switch (kind) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.pick([0, -1, 1, 2, 1e308, -1e308, 2 ** 31, 2 ** 53, 0.5, -0.0, 511, 512, 49152, 99999999]);
    case 3: return rng.pick(["", "x", "Once upon a time", "\u0000", "<s>", "</s>", "<|im_end|>", "\ud800", "🦙".repeat(rng.int(50)), "a".repeat(rng.int(5000))]);
    case 4: return Array.from({ length: rng.int(6) }, () => rng.int(600) - 50);
    case 5: return Array.from({ length: rng.int(4) }, () => rng.pick(["x", 1, -1, null, 1.5, "y"]));
    case 6: return {};
    case 7: return Array.from({ length: rng.int(4) }, () => value(rng, depth + 1));
    default: return Object.fromEntries(Array.from({ length: rng.int(4) }, () => [rng.pick(["role", "content", "text", "filename", "id", "scale", "type", "x"]), value(rng, depth + 1)]));
  }
}

/** A body for `fields`: mostly a plausible request with some fields replaced; sometimes not JSON at all. */
function body(rng, fields) {
  const shape = rng.int(10);
  if (shape === 0) return rng.pick(["", "{", "[1,2", "null", '"text"', "1e999", "{\"a\":", "\u00ff\u00fe", "[]", "{}"]);
  if (shape === 1) return JSON.stringify(value(rng));
  const base = {
    prompt: "Once", max_tokens: 2, messages: [{ role: "user", content: "hi" }], input: "x", content: "Once upon a time",
    tokens: [1, 403], input_prefix: "def f(", input_suffix: ")", n_predict: 2, temperature: 0, query: "Once", documents: ["upon", "a time"],
  };
  const out = rng.chance(0.3) ? {} : Object.fromEntries(Object.entries(base).filter(() => rng.chance(0.7)));
  for (let i = rng.range(1, 3); i > 0 && fields.length > 0; i--) out[rng.pick(fields)] = value(rng);
  if (fields.includes("messages") && rng.chance(0.25)) out.messages = [{ role: "user", content: [rng.pick(MEDIA_PARTS), { type: "text", text: "hi" }] }];
  return JSON.stringify(out);
}

function slotRequest(rng) {
  const id = rng.pick(["0", "1", "-1", "99", "abc", "1e2", "0x1", "00", "4294967296", "%2e%2e"]);
  const action = rng.pick(["save", "restore", "erase", "delete", "", null, "SAVE"]);
  const path = `/slots/${id}${action === null ? "" : `?action=${action}`}`;
  const filename = rng.chance(0.5) ? rng.pick(HOSTILE_NAMES) : rng.chance(0.5) ? `ok-${rng.int(3)}.bin` : value(rng);
  const text = rng.chance(0.1) ? rng.pick(["", "{", "[]"]) : JSON.stringify(rng.chance(0.9) ? { filename } : value(rng));
  return { method: "POST", path, body: text };
}

function send(base, method, path, headers, text) {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, headers, agent: false }, (res) => {
      let answer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (answer += chunk));
      res.on("end", () => resolve({ status: res.statusCode, type: String(res.headers["content-type"] ?? ""), body: answer }));
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`no answer in 60 s: ${method} ${path}`)));
    req.on("error", reject);
    req.end(text);
  });
}

/** What is wrong with an answer, or null. */
function judge(res) {
  if (res.status >= 500 && res.status !== 501) return `status ${res.status}: ${res.body.slice(0, 300)}`;
  if (res.type.startsWith("text/event-stream")) return res.status === 200 ? null : `stream with status ${res.status}`;
  // /metrics answers in Prometheus's text format.
  if (res.status === 200 && res.type.startsWith("text/plain") && res.body.startsWith("# HELP llamacpp:")) return null;
  let parsed;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    return `not JSON (status ${res.status}): ${res.body.slice(0, 200)}`;
  }
  if (res.status >= 400 && (typeof parsed?.error?.message !== "string" || typeof parsed.error.type !== "string")) return `error not in OpenAI's shape: ${res.body.slice(0, 200)}`;
  return null;
}

/**
 * Sends `ops` random requests to the server at `base` (its root URL, no /v1). `key` is its API key;
 * `slotDir` its --slot-save-path (whose parent must hold nothing else that changes). Resolves to the
 * failures and a count of answers by status.
 */
export async function fuzzServer(base, { ops, seed = 1, key, slotDir }) {
  const rng = new Random(seed, 0);
  const failures = [];
  const statuses = {};
  const beside = slotDir === undefined ? null : () => readdirSync(dirname(slotDir)).sort().join("\n");
  const before = beside?.();
  for (let i = 0; i < ops; i++) {
    const slot = rng.chance(0.25);
    const [method, path, fields] = slot ? [] : rng.pick(ROUTES);
    const req = slot ? slotRequest(rng) : { method: rng.chance(0.05) ? rng.pick(["PUT", "DELETE", "OPTIONS", "PATCH"]) : method, path, body: method === "POST" ? body(rng, fields) : undefined };
    const headers = { "Content-Type": "application/json" };
    if (key !== undefined && rng.chance(0.95)) headers.Authorization = `Bearer ${rng.chance(0.97) ? key : "wrong"}`;
    const label = `#${i} ${req.method} ${req.path} ${JSON.stringify(req.body ?? "").slice(0, 160)}`;
    try {
      const res = await send(base, req.method, req.path, headers, req.body);
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      const wrong = judge(res);
      if (wrong !== null) failures.push(`${label}: ${wrong}`);
    } catch (err) {
      failures.push(`${label}: ${err.message}`);
    }
    if (i % 50 === 49 || i === ops - 1) {
      const health = await send(base, "GET", "/health", {}, undefined).catch((err) => ({ status: 0, body: err.message }));
      if (health.status !== 200) failures.push(`after #${i}: /health answered ${health.status} ${health.body}`);
      if (beside !== null && beside() !== before) failures.push(`after #${i}: files appeared beside the slot directory: ${beside()}`);
    }
  }
  return { failures, statuses };
}

async function main() {
  const { values } = parseArgs({
    options: {
      ops: { type: "string", default: "2000" },
      seed: { type: "string", default: "1" },
      model: { type: "string", default: join(root, "..", "shared", "models", "stories260K.gguf") },
    },
  });
  const { compiledLibrary } = await import("./compiled-lib.mjs");
  const library = compiledLibrary();
  Object.assign(process.env, library.env);
  const { Llama, startServer } = createRequire(import.meta.url)(join(library.lib, "index.js"));
  const parent = mkdtempSync(join(tmpdir(), "llama-napi-fuzz-server-"));
  const slotDir = join(parent, "slots");
  mkdirSync(slotDir);
  const llama = await Llama.load({ modelPath: values.model, nCtx: 256, nThreads: 1, nParallel: 2 });
  const key = "fuzz-key";
  const server = await startServer({ llama, port: 0, apiKey: key, maxTokensCap: 8, maxBodyBytes: 64 * 1024, slotSavePath: slotDir, cors: ["http://localhost:3000"], metrics: true });
  try {
    const started = performance.now();
    const { failures, statuses } = await fuzzServer(server.url.replace(/\/v1$/, ""), { ops: Number(values.ops), seed: Number(values.seed), key, slotDir });
    console.log(JSON.stringify({ ops: Number(values.ops), seed: Number(values.seed), seconds: Math.round((performance.now() - started) / 100) / 10, statuses }, null, 2));
    console.log(failures.length === 0 ? "no request broke a rule" : `${failures.length} failures:\n${failures.slice(0, 50).join("\n")}`);
    process.exitCode = failures.length === 0 ? 0 : 1;
  } finally {
    await server.close(0);
    await llama.dispose();
    rmSync(parent, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
