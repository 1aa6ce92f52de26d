// Child of scripts/fuzz-gguf.mjs: loads one mutated GGUF file per IPC message and answers with the
// outcome of each stage. A native crash kills this process; the parent attributes it to the case
// in flight and starts a new child.
//   env FUZZ_LIB: folder of the compiled library (dist/cjs or a tsc output with the same layout)
//   env FUZZ_TARGET: "api" (LlamaModel.load, with llama-napi's own checks) or "raw" (the file goes
//                    straight to llama.cpp, to find what it cannot take)
"use strict";
const { join } = require("node:path");

const lib = process.env.FUZZ_LIB;
const target = process.env.FUZZ_TARGET ?? "api";
const { LlamaModel, LlamaError, generateTokens } = require(join(lib, "index.js"));
const { readGgufHeader } = require(join(lib, "gguf/reader.js"));
const { native } = require(join(lib, "core/binding.js"));

const PROMPT = "Hello world! Once upon a time, there was a 猫 named ünïcödé.";

/** An error as a short outcome: the LlamaError code, or "unexpected <name>" for anything else. */
function outcomeOf(err) {
  if (err instanceof LlamaError) return { outcome: err.code, message: err.message.slice(0, 300) };
  const name = err instanceof Error ? err.name : typeof err;
  return { outcome: `unexpected ${name}`, message: String(err instanceof Error ? err.message : err).slice(0, 300) };
}

async function stage(run) {
  try {
    await run();
    return { outcome: "ok" };
  } catch (err) {
    return outcomeOf(err);
  }
}

async function load(path, loadOptions) {
  if (target === "api") return LlamaModel.load(path, loadOptions);
  // Bypasses LlamaModel.load's file checks: the class's constructor is private only to TypeScript.
  try {
    const handle = await native.loadModel(path, loadOptions);
    return new LlamaModel(path, handle);
  } catch (err) {
    const code = err && err.code;
    throw typeof code === "string" ? new LlamaError(code, err.message) : err;
  }
}

/** What an application does first with a model: metadata, tokenizer, a short greedy completion. */
async function use(model) {
  model.metadata();
  model.chatTemplate();
  const tokens = model.tokenize(PROMPT, { addSpecial: true, parseSpecial: true });
  model.detokenize(tokens, { unparseSpecial: true });
  const decoder = model.createTokenDecoder({ special: true });
  for (const token of tokens) decoder.push(token);
  decoder.flush();
  for (const token of [0, model.nVocab - 1, model.info.bos, model.info.eos]) {
    if (token < 0 || token >= model.nVocab) continue;
    model.tokenText(token);
    model.tokenBytes(token, true);
    model.isEog(token);
  }
  if (model.info.nLayer === 0 || tokens.length === 0) return;
  // One thread: the graph runs on the calling thread, where an assertion becomes an error that the
  // parent counts as a failure (on ggml's thread pool it would end the process). Two threads would
  // also crawl on a busy machine: ggml's pool spins at barriers.
  const context = await model.createContext({ nCtx: 64, nBatch: 64, nThreads: 1 });
  const sampler = model.createSampler({ temperature: 0 });
  try {
    const prompt = tokens.subarray(0, Math.min(tokens.length, 16));
    for await (const token of generateTokens(context, sampler, prompt, { maxTokens: 3 })) model.tokenBytes(token);
  } finally {
    sampler.dispose();
    await context.dispose();
  }
}

async function runCase({ id, path, loadOptions }) {
  const reader = await stage(() => readGgufHeader(path));
  let loaded = null;
  const loadResult = await stage(async () => {
    loaded = await load(path, loadOptions);
  });
  let useResult = null;
  if (loaded !== null) {
    useResult = await stage(() => use(loaded));
    loaded.dispose();
  }
  return { id, reader, load: loadResult, use: useResult };
}

process.on("message", (message) => {
  runCase(message).then(
    (result) => process.send(result),
    (err) => process.send({ id: message.id, fatal: String(err && err.stack ? err.stack : err) }),
  );
});
process.send({ ready: true });
