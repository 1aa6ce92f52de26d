#!/usr/bin/env node
// Concurrency chaos: thousands of random, overlapping requests on one `Llama` with 1, 2 and 4
// parallel sequences: whole and streamed completions and chats, readers that are slow, that break
// off, that abort, that drop a half-read stream, stop strings, logprobs, embeddings, grammars,
// JSON, generation until the context is full, seeded sampling, with --mmproj images in prompts
// (whole, streamed, aborted, broken files); a GC runs every 50 ms, and every
// 250 requests the `Llama` is disposed with requests in flight and a new one loaded. Every greedy
// answer must equal the one a lone request got, every error must be the LlamaError the request
// asked for (or DISPOSED/ABORTED at a dispose), and nothing may hang.
//
//   node scripts/chaos.mjs [--ops 20000] [--seed 1] [--parallel 1,2,4] [--skip kind,...] [--model path]
//                          [--mmproj path --image path [--image path ...]] [--json]
//
// Only answers whose every token won by a clear margin (top-2 log-probabilities at least 0.02
// apart) are compared: batches of other sizes may round a near tie the other way.
// Exit status 1 when any request broke a rule (listed under "failures").
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { setImmediate as turn, setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { compiledLibrary } from "./compiled-lib.mjs";
import { Random } from "./gguf-mutate.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const MARGIN = 0.02;
const HANG_MS = Number(process.env.CHAOS_HANG_MS ?? 60_000);
const ROUND = 250;

function parseArgs(argv) {
  const options = {
    ops: 20_000,
    seed: 1,
    parallel: [1, 2, 4],
    model: join(resolve(process.env.LLAMA_NAPI_MODELS ?? join(root, "..", "shared", "models")), "stories260K.gguf"),
    json: false,
    skip: [],
    mmproj: undefined,
    images: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
      return argv[++i];
    };
    switch (argv[i]) {
      case "--ops": options.ops = Number(value()); break;
      case "--seed": options.seed = Number(value()); break;
      case "--parallel": options.parallel = value().split(",").map(Number); break;
      case "--model": options.model = resolve(value()); break;
      case "--json": options.json = true; break;
      case "--skip": options.skip = value().split(","); break;
      case "--mmproj": options.mmproj = resolve(value()); break;
      case "--image": options.images.push(resolve(value())); break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!Number.isInteger(options.ops) || options.ops < 1) throw new Error("--ops must be a positive integer");
  if (!options.parallel.every((n) => Number.isInteger(n) && n >= 1)) throw new Error("--parallel takes positive integers");
  if ((options.mmproj === undefined) !== (options.images.length === 0)) throw new Error("--mmproj and --image go together");
  return options;
}

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc");

const PROMPTS = ["Once upon a time", "Lily and Tom went to the park", "The little dog was sad because", "One day, a girl", "Tim had a red ball", "The sun was"];
const CHATS = [[{ role: "user", content: "Hi" }], [{ role: "system", content: "Be brief." }, { role: "user", content: "Tell me a story" }]];
const LENGTHS = [1, 5, 17, 40];

/** The smallest gap between the two best alternatives over an answer's tokens. */
function margin(tops) {
  let smallest = Infinity;
  for (const values of tops) {
    const [best, second] = [...values].sort((a, b) => b - a);
    smallest = Math.min(smallest, second === undefined ? 0 : best - second);
  }
  return smallest;
}

/** What a lone request answers: greedy completions and chats, kept when every token won clearly. */
async function references(Llama, modelPath, mmprojPath, images) {
  const llm = await Llama.load({ modelPath, mmprojPath, nCtx: 256, nThreads: 1 });
  const media = [];
  for (const image of images) {
    for (const prompt of PROMPTS.slice(0, 2)) {
      const res = await llm.createCompletion(`<__media__>${prompt}`, { media: [image], maxTokens: 12, temperature: 0, logprobs: 2 });
      const choice = res.choices[0];
      if (margin(choice.logprobs.top_logprobs.map((top) => Object.values(top))) < MARGIN) continue;
      media.push({ prompt: `<__media__>${prompt}`, image, text: choice.text });
    }
  }
  const completions = [];
  const chats = [];
  for (const prompt of PROMPTS) {
    for (const maxTokens of LENGTHS) {
      const res = await llm.createCompletion(prompt, { maxTokens, temperature: 0, logprobs: 2 });
      const choice = res.choices[0];
      if (margin(choice.logprobs.top_logprobs.map((top) => Object.values(top))) < MARGIN) continue;
      completions.push({ prompt, maxTokens, text: choice.text, finish: choice.finish_reason });
    }
  }
  for (const messages of CHATS) {
    for (const maxTokens of LENGTHS) {
      const res = await llm.createChatCompletion({ messages, maxTokens, temperature: 0, logprobs: true, topLogprobs: 2 });
      const choice = res.choices[0];
      if (margin(choice.logprobs.content.map((t) => t.top_logprobs.map((a) => a.logprob))) < MARGIN) continue;
      chats.push({ messages, maxTokens, text: choice.message.content, finish: choice.finish_reason });
    }
  }
  // A prompt that leaves about 20 tokens of the context: `maxTokens: null` runs until it is full.
  const filler = (n) => Array.from({ length: n }, (_, i) => PROMPTS[i % PROMPTS.length]).join(". ");
  let parts = 1;
  while (llm.tokenize(filler(parts + 1)).length < llm.nCtx - 20) parts++;
  const long = { prompt: filler(parts), tokens: llm.tokenize(filler(parts)).length };
  const embeddings = await Promise.all(PROMPTS.map(async (prompt) => ({ prompt, vector: (await llm.embed(prompt))[0] })));
  // Seeded sampling only has to finish; its tokens are as sensitive to rounding as a near tie.
  await llm.dispose();
  return { completions, chats, embeddings, long, media, nCtx: llm.nCtx, eos: llm.model.info.eos };
}

/**
 * The requests. Each returns nothing on success and throws a description of a broken rule;
 * `expectAbort` marks the errors a request may end with.
 */
function operations(rng, refs) {
  const completion = () => rng.pick(refs.completions);
  const chat = () => rng.pick(refs.chats);
  /** A reader's pace between chunks: none, one turn, or a few milliseconds. */
  const pace = () => {
    const kind = rng.int(4);
    return kind === 0 ? Promise.resolve() : kind === 1 ? turn() : sleep(rng.int(4));
  };
  const same = (what, got, want) => {
    if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  };
  const prefix = (what, got, want) => {
    if (!want.startsWith(got)) throw new Error(`${what}: ${JSON.stringify(got)} is not a beginning of ${JSON.stringify(want)}`);
  };
  return {
    async whole(llm) {
      const ref = completion();
      const res = await llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0 });
      same("text", res.choices[0].text, ref.text);
      same("finish_reason", res.choices[0].finish_reason, ref.finish);
    },
    async stream(llm, _expectAbort, note) {
      const ref = completion();
      let text = "";
      let finish = null;
      let read = 0;
      note(`${JSON.stringify(ref.prompt)} max ${ref.maxTokens} read 0`);
      for await (const chunk of llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, stream: true })) {
        text += chunk.choices[0].text;
        finish = chunk.choices[0].finish_reason ?? finish;
        note(`${JSON.stringify(ref.prompt)} max ${ref.maxTokens} read ${++read} finish ${chunk.choices[0].finish_reason}`);
        await pace();
      }
      same("streamed text", text, ref.text);
      same("streamed finish_reason", finish, ref.finish);
    },
    async breakOff(llm) {
      const ref = completion();
      const keep = rng.int(8);
      let text = "";
      let read = 0;
      for await (const chunk of llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, stream: true })) {
        text += chunk.choices[0].text;
        if (++read > keep) break;
        await pace();
      }
      prefix("text before break", text, ref.text);
    },
    async abortWhole(llm, expectAbort) {
      const ref = completion();
      const controller = new AbortController();
      // Before the request starts, while its prompt decodes, or as it generates (or after it ends).
      void (rng.int(4) === 0 ? turn() : sleep(rng.int(12))).then(() => controller.abort());
      expectAbort("ABORTED");
      const res = await llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, signal: controller.signal });
      same("text finished before its abort", res.choices[0].text, ref.text);
    },
    async abortStream(llm, expectAbort) {
      const ref = completion();
      const controller = new AbortController();
      const at = rng.int(6);
      let text = "";
      let read = 0;
      expectAbort("ABORTED");
      try {
        for await (const chunk of llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, stream: true, signal: controller.signal })) {
          text += chunk.choices[0].text;
          if (++read === at) controller.abort();
          await pace();
        }
      } finally {
        prefix("text before abort", text, ref.text);
      }
      same("text finished before its abort", text, ref.text);
    },
    async chat(llm) {
      const ref = chat();
      if (rng.int(2) === 0) {
        const res = await llm.createChatCompletion({ messages: ref.messages, maxTokens: ref.maxTokens, temperature: 0 });
        same("chat content", res.choices[0].message.content, ref.text);
        same("chat finish_reason", res.choices[0].finish_reason, ref.finish);
        return;
      }
      let text = "";
      for await (const chunk of llm.createChatCompletion({ messages: ref.messages, maxTokens: ref.maxTokens, temperature: 0, stream: true })) {
        text += chunk.choices[0].delta.content ?? "";
        await pace();
      }
      same("streamed chat content", text, ref.text);
    },
    async stop(llm) {
      const ref = completion();
      if (ref.text.length < 4) return;
      const from = rng.int(ref.text.length - 3);
      const stop = ref.text.slice(from, from + 1 + rng.int(3));
      const res = await llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, stop });
      same("text cut at its stop string", res.choices[0].text, ref.text.slice(0, ref.text.indexOf(stop)));
      same("finish_reason at a stop string", res.choices[0].finish_reason, "stop");
    },
    async logprobs(llm) {
      const ref = completion();
      const res = await llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, logprobs: 1 + rng.int(3) });
      const choice = res.choices[0];
      same("text with logprobs", choice.text, ref.text);
      same("logprobs tokens joined", choice.logprobs.tokens.join(""), choice.text);
    },
    async streamLogprobs(llm) {
      const ref = completion();
      let text = "";
      let tokens = "";
      for await (const chunk of llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, stream: true, logprobs: 2 })) {
        text += chunk.choices[0].text;
        tokens += chunk.choices[0].logprobs?.tokens.join("") ?? "";
        await pace();
      }
      same("streamed text with logprobs", text, ref.text);
      same("streamed logprobs tokens joined", tokens, text);
    },
    async embed(llm) {
      const ref = rng.pick(refs.embeddings);
      const [vector] = await llm.embed(ref.prompt);
      const gap = vector.reduce((worst, x, i) => Math.max(worst, Math.abs(x - ref.vector[i])), 0);
      if (vector.length !== ref.vector.length || gap > 1e-5) throw new Error(`embedding of ${JSON.stringify(ref.prompt)} off by ${gap}`);
    },
    async grammar(llm) {
      const ref = completion();
      const res = await llm.createCompletion(ref.prompt, { maxTokens: 12, temperature: 0.8, seed: rng.int(1000), grammar: 'root ::= "[" [0-9]+ ("," [0-9]+)* "]"' });
      const { text, finish_reason: finish } = res.choices[0];
      const complete = /^\[[0-9]+(,[0-9]+)*\]$/.test(text);
      const partial = /^(\[([0-9]+(,[0-9]*)*)?)?$/.test(text);
      if (finish === "stop" ? !complete : !(partial || complete)) throw new Error(`${JSON.stringify(text)} (${finish}) breaks the grammar`);
    },
    async json(llm) {
      const ref = chat();
      const res = await llm.createChatCompletion({ messages: ref.messages, maxTokens: 48, temperature: 0.8, seed: rng.int(1000), responseFormat: { type: "json_object" } });
      const { message, finish_reason: finish } = res.choices[0];
      if (finish === "stop") JSON.parse(message.content);
    },
    async untilFull(llm) {
      // maxTokens null, with no end of story: until the context is full. The long prompt goes in
      // several batches and may share its beginning with a cached one.
      const res = await llm.createCompletion(refs.long.prompt, { maxTokens: null, temperature: 0.8, seed: rng.int(1000), logitBias: { [refs.eos]: -100 } });
      same("prompt tokens", res.usage.prompt_tokens, refs.long.tokens);
      same("tokens of a full context", res.usage.total_tokens, refs.nCtx);
      same("finish_reason of a full context", res.choices[0].finish_reason, "length");
    },
    async seeded(llm) {
      const ref = completion();
      const res = await llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0.9, seed: rng.int(1000) });
      if (res.usage.completion_tokens < 1 || res.usage.completion_tokens > ref.maxTokens) {
        throw new Error(`seeded completion_tokens ${res.usage.completion_tokens} outside 1..${ref.maxTokens}`);
      }
    },
    async media(llm) {
      if (refs.media.length === 0) return;
      const ref = rng.pick(refs.media);
      const res = await llm.createCompletion(ref.prompt, { media: [ref.image], maxTokens: 12, temperature: 0 });
      same("text with an image", res.choices[0].text, ref.text);
    },
    async mediaStream(llm, expectAbort) {
      if (refs.media.length === 0) return;
      const ref = rng.pick(refs.media);
      const controller = new AbortController();
      // Aborted while the image is read or decoded, or as it generates; or never.
      if (rng.int(3) === 0) void sleep(rng.int(6)).then(() => controller.abort());
      expectAbort("ABORTED");
      let text = "";
      try {
        for await (const chunk of llm.createCompletion(ref.prompt, { media: [ref.image], maxTokens: 12, temperature: 0, stream: true, signal: controller.signal })) {
          text += chunk.choices[0].text;
          await pace();
        }
      } finally {
        prefix("streamed text with an image", text, ref.text);
      }
      same("streamed text with an image", text, ref.text);
    },
    async badMedia(llm, expectAbort) {
      if (refs.media.length === 0) return;
      // A file cut short: stb_image refuses it, and the model goes on.
      const image = rng.pick(refs.media).image;
      expectAbort("INVALID_MEDIA");
      await llm.createCompletion("<__media__>Hi", { media: [image.subarray(0, 40 + rng.int(image.length - 80))], maxTokens: 2 });
      throw new Error("a truncated image was taken");
    },
    async dropped(llm) {
      // Half-read and forgotten (no return()): the GC stops it and frees its sequence.
      const ref = completion();
      const iterator = llm.createCompletion(ref.prompt, { maxTokens: ref.maxTokens, temperature: 0, stream: true })[Symbol.asyncIterator]();
      if (rng.int(2) === 0) prefix("dropped stream's first chunk", (await iterator.next()).value?.choices[0].text ?? "", ref.text);
    },
  };
}

/** Records a broken rule, and shows it at once on stderr. */
function report(failures, failure) {
  failures.push(failure);
  process.stderr.write(`${failure}\n`);
}

/**
 * One request of `kind`, which must succeed or end with the error it asked for; at a dispose, it
 * may also end DISPOSED or ABORTED.
 */
async function attempt(llm, ops, kind, tally, failures, label, atDispose = false) {
  let allowed = atDispose ? ["DISPOSED", "ABORTED"] : [];
  const expectAbort = (code) => (allowed = [...allowed, code]);
  let state = "";
  const note = (text) => (state = text);
  let timer;
  const hang = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${HANG_MS} ms (${state}; ${llm.active} active, ${llm.queued} queued)`)), HANG_MS)));
  const counts = tally[kind];
  counts.started++;
  try {
    await Promise.race([ops[kind](llm, expectAbort, note), hang]);
    counts.ok++;
  } catch (error) {
    if (error?.name === "LlamaError" && allowed.includes(error.code)) counts[error.code === "DISPOSED" ? "disposed" : "aborted"]++;
    else report(failures, `${label} ${kind}${atDispose ? " at dispose" : ""}: ${error?.name === "LlamaError" ? `LlamaError ${error.code}: ` : ""}${error?.message ?? error}`);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `count` random requests, in bursts of up to 10 in flight. */
async function run(llm, rng, ops, count, failures, tally, label) {
  const kinds = Object.keys(ops);
  const inFlight = new Set();
  let started = 0;
  while (started < count) {
    // Bursts of different widths: lone requests, a full batch, a queue.
    const width = 1 + rng.int(10);
    while (inFlight.size < width && started < count) {
      started++;
      const request = attempt(llm, ops, rng.pick(kinds), tally, failures, label).finally(() => inFlight.delete(request));
      inFlight.add(request);
      if (rng.int(3) === 0) await turn();
    }
    await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

/** Disposes `llm` with random requests in flight (some streams read, some wait for their reader). */
async function disposeMidway(llm, rng, ops, failures, tally, label) {
  const kinds = Object.keys(ops);
  const inFlight = Array.from({ length: 1 + rng.int(8) }, () => attempt(llm, ops, rng.pick(kinds), tally, failures, label, true));
  await (rng.int(3) === 0 ? turn() : sleep(rng.int(6)));
  await llm.dispose();
  await Promise.all(inFlight);
  const after = await llm.createCompletion("Hi", { maxTokens: 1 }).then(
    () => "an answer",
    (error) => error.code,
  );
  if (after !== "DISPOSED") report(failures, `${label} a request after dispose got ${after}, want DISPOSED`);
}

/** Waits for dropped streams to be collected and their sequences freed. */
async function idle(llm) {
  const deadline = Date.now() + 10_000;
  while (llm.active > 0 || llm.queued > 0) {
    if (Date.now() > deadline) return false;
    gc();
    await sleep(10);
  }
  return true;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const log = options.json ? () => {} : (line) => console.log(line);
  const library = compiledLibrary();
  Object.assign(process.env, library.env);
  const { Llama } = createRequire(import.meta.url)(join(library.lib, "index.js"));
  // Seeded, so that a failing run can be repeated.
  const rng = new Random(options.seed, 0);
  const images = options.images.map((path) => readFileSync(path));
  const refs = await references(Llama, options.model, options.mmproj, images);
  log(`references: ${refs.completions.length} completions, ${refs.chats.length} chats with clear margins`);
  const ops = operations(rng, refs);
  for (const kind of options.skip) {
    if (!(kind in ops)) throw new Error(`--skip: no request kind ${kind}`);
    delete ops[kind];
  }
  const tally = Object.fromEntries(Object.keys(ops).map((kind) => [kind, { started: 0, ok: 0, aborted: 0, disposed: 0 }]));
  const failures = [];
  const started = performance.now();
  // Dropped streams hold their sequence until the GC finds them.
  const collector = setInterval(gc, 50);
  for (const [index, nParallel] of options.parallel.entries()) {
    const label = `nParallel ${nParallel}:`;
    const count = Math.floor(options.ops / options.parallel.length) + (index < options.ops % options.parallel.length ? 1 : 0);
    // A new Llama every ROUND requests, each disposed with requests in flight.
    for (let done = 0; done < count; done += ROUND) {
      const llm = await Llama.load({ modelPath: options.model, mmprojPath: options.mmproj, nCtx: 256, nThreads: 1, nParallel });
      await run(llm, rng, ops, Math.min(ROUND, count - done), failures, tally, label);
      if (!(await idle(llm))) report(failures, `${label} ${llm.active} active and ${llm.queued} queued after every request settled`);
      // Still sound after all that: a lone request answers as before.
      await attempt(llm, ops, "whole", tally, failures, `${label} after a round:`);
      await disposeMidway(llm, rng, ops, failures, tally, label);
    }
    log(`${label} ${count} requests, ${failures.length} failures so far`);
  }
  clearInterval(collector);
  const result = { seed: options.seed, ops: options.ops, parallel: options.parallel, seconds: Math.round((performance.now() - started) / 100) / 10, tally, failures };
  if (options.json) console.log(JSON.stringify(result));
  else {
    console.log(JSON.stringify({ ...result, failures: undefined }, null, 2));
    console.log(failures.length === 0 ? "no request broke a rule" : `${failures.length} failures:\n${failures.slice(0, 50).join("\n")}`);
  }
  process.exitCode = failures.length === 0 ? 0 : 1;
}

await main();
