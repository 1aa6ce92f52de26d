#!/usr/bin/env node
// Fuzzes model loading: mutates real GGUF files field by field (magic, version, counts, key/value
// types and lengths, strings, arrays, tensor names, shapes, types and offsets, alignment,
// truncation at every region) and loads each one through the public API in a child process,
// together with lib/gguf/reader.ts's readGgufHeader. Every failure must be a LlamaError; a crash (signal)
// or a hang (timeout) is attributed to the case in flight, saved for replay, and the child is
// restarted at the next case.
//
//   node scripts/fuzz-gguf.mjs [--cases 10000] [--seed 1] [--jobs 1] [--timeout 20000]
//                              [--target api|raw] [--corpus all|models|stories260K|generated-vocabs]
//                              [--crash-dir test/.fuzz-crashes] [--json]
//   node scripts/fuzz-gguf.mjs --seed 1 --only 1234        re-run one case of a run
//   node scripts/fuzz-gguf.mjs --replay file.gguf [--vocab-only] [--no-mmap]
//   node scripts/fuzz-gguf.mjs --dry-run --cases 100     only generate: prints a digest of the bytes
//
// --target raw hands the files to llama.cpp without llama-napi's checks, to find what llama.cpp
// itself cannot take; --target api (the default) must show no crash and no hang.
// Exit status: 0 when every case ended in success or a LlamaError, 1 otherwise.
import { fork } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { compiledLibrary } from "./compiled-lib.mjs";
import { loadCorpus, makeCase } from "./gguf-mutate.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const childScript = join(root, "scripts", "fuzz-gguf-child.cjs");

// ---------------------------------------------------------------------------------------------
// Children.

const LOAD_CODES = new Set(["INVALID_GGUF", "MODEL_LOAD_FAILED"]);
const USE_CODES = new Set(["CONTEXT_CREATE_FAILED", "DECODE_FAILED", "TOKENIZE_FAILED", "CONTEXT_FULL"]);
// A ggml abort that the addon turned into an error ("llama.cpp failed: ..." from its abort guard):
// graceful where it was caught, but a sign that the file got past llama-napi's checks.
const CAUGHT_ABORT = /llama\.cpp failed:|GGML_ASSERT|GGML_ABORT/;

/** The verdict on one child's answer: null when acceptable, else what went wrong. */
function problemOf(result) {
  if (result.fatal) return `child error: ${result.fatal}`;
  if (result.reader.outcome !== "ok" && result.reader.outcome !== "INVALID_GGUF") {
    return `readGgufHeader: ${result.reader.outcome}: ${result.reader.message}`;
  }
  if (result.load.outcome !== "ok" && !LOAD_CODES.has(result.load.outcome)) return `load: ${result.load.outcome}: ${result.load.message}`;
  if (result.use && result.use.outcome !== "ok") {
    // An abort while decoding was caught only because the child decodes on one thread: with
    // ggml's thread pool it would have ended the process. (The tokenizer runs on the calling
    // thread, where the addon always catches.)
    const decodeAbort = result.use.outcome !== "TOKENIZE_FAILED" && CAUGHT_ABORT.test(result.use.message);
    if (!USE_CODES.has(result.use.outcome) || decodeAbort) return `use: ${result.use.outcome}: ${result.use.message}`;
  }
  return null;
}

class Child {
  constructor(options, slot) {
    this.options = options;
    this.casePath = join(options.workDir, `case-${slot}.gguf`);
    this.proc = null;
  }

  async start() {
    this.stderr = "";
    const proc = fork(childScript, [], {
      env: { ...process.env, ...this.options.library.env, FUZZ_LIB: this.options.library.lib, FUZZ_TARGET: this.options.target },
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      execArgv: [],
    });
    proc.stderr.on("data", (chunk) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    this.proc = proc;
    await new Promise((resolveReady, reject) => {
      proc.once("message", () => resolveReady());
      proc.once("exit", (code, signal) => reject(new Error(`fuzz child exited at start (${signal ?? code}): ${this.stderr}`)));
    });
  }

  /** Runs one case: resolves to the child's answer, or { crash } / { hang }. */
  async run(testCase, loadOptions) {
    if (this.proc === null) await this.start();
    writeFileSync(this.casePath, testCase.bytes);
    this.stderr = "";
    const proc = this.proc;
    return new Promise((settle) => {
      const done = (result) => {
        clearTimeout(timer);
        proc.off("message", onMessage);
        proc.off("exit", onExit);
        settle(result);
      };
      const onMessage = (message) => {
        if (message.id === testCase.index) done(message);
      };
      const onExit = (code, signal) => {
        this.proc = null;
        // Give the stderr pipe a moment to deliver llama.cpp's last words.
        setTimeout(() => done({ crash: signal ?? `exit ${code}`, stderr: this.stderr.trim() }), 50);
      };
      const timer = setTimeout(() => {
        proc.off("exit", onExit);
        proc.kill("SIGKILL");
        this.proc = null;
        done({ hang: this.options.timeout, stderr: this.stderr.trim() });
      }, this.options.timeout);
      proc.on("message", onMessage);
      proc.once("exit", onExit);
      proc.send({ id: testCase.index, path: this.casePath, loadOptions });
    });
  }

  stop() {
    if (this.proc !== null && this.proc.connected) this.proc.disconnect();
    this.proc = null;
  }
}

function saveFailure(options, testCase, verdict) {
  mkdirSync(options.crashDir, { recursive: true });
  const stem = join(options.crashDir, `seed${options.seed}-case${testCase.index}-${testCase.strategy}`);
  writeFileSync(`${stem}.gguf`, testCase.bytes);
  writeFileSync(
    `${stem}.json`,
    JSON.stringify({ ...verdict, seed: options.seed, case: testCase.index, seedFile: testCase.seedFile, note: testCase.note, load: testCase.load, target: options.target, replay: `node scripts/fuzz-gguf.mjs --replay ${stem}.gguf${testCase.load.vocabOnly ? " --vocab-only" : ""}${testCase.load.useMmap ? "" : " --no-mmap"} --target ${options.target}` }, null, 2),
  );
  return `${stem}.gguf`;
}

function bump(table, key) {
  table[key] = (table[key] ?? 0) + 1;
}

async function fuzz(options) {
  const corpus = loadCorpus(options.corpus, options.typeInfo);
  const summary = { target: options.target, seed: options.seed, cases: 0, crashes: 0, hangs: 0, unexpected: 0, loaded: 0, used: 0, readerAccepted: 0, readerStricter: 0, readerLaxer: 0, seconds: 0, outcomes: {}, strategies: {}, failures: [], stricterExamples: [], laxerExamples: [], abortExamples: [], loadAbortsCaught: 0 };
  const started = performance.now();
  const indices = options.only !== undefined ? [options.only] : Array.from({ length: options.cases }, (_, i) => options.first + i);
  let next = 0;
  const lastProgress = { at: performance.now() };

  async function lane(slot) {
    const child = new Child(options, slot);
    try {
      while (next < indices.length) {
        const testCase = makeCase(corpus, options.seed, indices[next++]);
        const result = await child.run(testCase, testCase.load);
        summary.cases++;
        bump(summary.strategies, testCase.strategy);
        let problem = null;
        if (result.crash !== undefined) {
          summary.crashes++;
          problem = `crash (${result.crash})`;
          bump(summary.outcomes, "crash");
        } else if (result.hang !== undefined) {
          summary.hangs++;
          problem = `hang (> ${result.hang} ms)`;
          bump(summary.outcomes, "hang");
        } else {
          problem = problemOf(result);
          if (problem !== null) summary.unexpected++;
          if (result.reader) {
            bump(summary.outcomes, `reader ${result.reader.outcome}`);
            bump(summary.outcomes, `load ${result.load.outcome}`);
            if (result.use) bump(summary.outcomes, `use ${result.use.outcome}`);
            if (result.reader.outcome === "ok") summary.readerAccepted++;
            if (result.load.outcome === "ok") summary.loaded++;
            if (result.load.outcome !== "ok" && CAUGHT_ABORT.test(result.load.message)) {
              summary.loadAbortsCaught++;
              if (summary.abortExamples.length < 100) summary.abortExamples.push({ case: testCase.index, note: testCase.note, load: result.load.message });
            }
            if (result.use?.outcome === "ok") summary.used++;
            // Where llama.cpp saw the file itself (raw), compare its verdict with the reader's.
            if (options.target === "raw" && result.reader.outcome !== "ok" && result.load.outcome === "ok") {
              summary.readerStricter++;
              if (summary.stricterExamples.length < 20) summary.stricterExamples.push({ case: testCase.index, note: testCase.note, reader: result.reader.message });
            }
            // The reader passed a file that ggml's own GGUF parser then refused.
            if (result.reader.outcome === "ok" && result.load.outcome !== "ok" && /gguf_init/.test(result.load.message)) {
              summary.readerLaxer++;
              if (summary.laxerExamples.length < 20) summary.laxerExamples.push({ case: testCase.index, note: testCase.note, load: result.load.message });
            }
          }
        }
        if (problem !== null) {
          const file = saveFailure(options, testCase, { problem, stderr: result.stderr, result });
          summary.failures.push({ case: testCase.index, strategy: testCase.strategy, note: testCase.note, problem, file, stderr: (result.stderr ?? "").slice(-600) });
          if (!options.json) console.error(`case ${testCase.index} [${testCase.seedFile}] ${testCase.note}: ${problem}\n  saved ${file}\n  ${(result.stderr ?? "").split("\n").slice(-3).join("\n  ")}`);
        }
        if (!options.json && performance.now() - lastProgress.at > 10_000) {
          lastProgress.at = performance.now();
          console.log(`${summary.cases}/${indices.length} cases, ${summary.crashes} crashes, ${summary.hangs} hangs, ${summary.unexpected} unexpected errors`);
        }
      }
    } catch (err) {
      child.stop();
      throw err;
    }
    child.stop();
  }

  await Promise.all(Array.from({ length: Math.min(options.jobs, indices.length) }, (_, slot) => lane(slot)));
  summary.seconds = Math.round((performance.now() - started) / 100) / 10;
  return summary;
}

/** Generates the cases without running them: the digest of their bytes shows determinism. */
function dryRun(options) {
  const corpus = loadCorpus(options.corpus, options.typeInfo);
  const digest = createHash("sha256");
  const strategies = {};
  for (let i = 0; i < options.cases; i++) {
    const testCase = makeCase(corpus, options.seed, options.first + i);
    bump(strategies, testCase.strategy);
    digest.update(`${testCase.index} ${testCase.note} ${JSON.stringify(testCase.load)}\n`).update(testCase.bytes);
  }
  return { cases: options.cases, seed: options.seed, digest: digest.digest("hex"), strategies };
}

async function replay(options) {
  const bytes = readFileSync(options.replay);
  const child = new Child(options, "replay");
  const result = await child.run({ index: 0, bytes }, { vocabOnly: options.vocabOnly, useMmap: !options.noMmap });
  child.stop();
  console.log(JSON.stringify(result, null, 2));
  return result.crash === undefined && result.hang === undefined && problemOf(result) === null;
}

// ---------------------------------------------------------------------------------------------
// Command line.

function parseArgs(argv) {
  const options = { cases: 10_000, first: 0, seed: 1, jobs: 1, timeout: 20_000, target: "api", corpus: "all", crashDir: join(root, "test", ".fuzz-crashes"), json: false, only: undefined, replay: undefined, vocabOnly: false, noMmap: false, dryRun: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i];
    switch (arg) {
      case "--cases": options.cases = Number(value()); break;
      case "--first": options.first = Number(value()); break;
      case "--seed": options.seed = Number(value()); break;
      case "--jobs": options.jobs = Number(value()); break;
      case "--timeout": options.timeout = Number(value()); break;
      case "--target": options.target = value(); break;
      case "--corpus": options.corpus = value(); break;
      case "--crash-dir": options.crashDir = resolve(value()); break;
      case "--only": options.only = Number(value()); break;
      case "--replay": options.replay = resolve(value()); break;
      case "--vocab-only": options.vocabOnly = true; break;
      case "--no-mmap": options.noMmap = true; break;
      case "--json": options.json = true; break;
      case "--dry-run": options.dryRun = true; break;
      default: throw new Error(`unknown argument ${arg}`);
    }
  }
  if (!["api", "raw"].includes(options.target)) throw new Error("--target must be api or raw");
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  options.library = compiledLibrary();
  options.typeInfo = createRequire(import.meta.url)(join(options.library.lib, "gguf", "types.js")).ggmlTypeInfo;
  options.workDir = mkdtempSync(join(tmpdir(), "llama-napi-fuzz-"));
  try {
    if (options.dryRun) {
      console.log(JSON.stringify(dryRun(options)));
      return;
    }
    if (options.replay !== undefined) {
      process.exitCode = (await replay(options)) ? 0 : 1;
      return;
    }
    const summary = await fuzz(options);
    if (options.json) {
      console.log(JSON.stringify(summary));
    } else {
      const { failures, stricterExamples, laxerExamples, abortExamples, ...rest } = summary;
      console.log(JSON.stringify(rest, null, 2));
      if (failures.length > 0) console.log("failures (each reproducible with --replay):", JSON.stringify(failures, null, 2));
      if (stricterExamples.length > 0) console.log("reader stricter than llama.cpp, e.g.:", JSON.stringify(stricterExamples, null, 2));
      if (laxerExamples.length > 0) console.log("reader laxer than ggml's GGUF parser, e.g.:", JSON.stringify(laxerExamples, null, 2));
      if (abortExamples.length > 0) console.log("ggml aborts caught while loading, e.g.:", JSON.stringify(abortExamples, null, 2));
      console.log(`${summary.cases} cases in ${summary.seconds} s: ${summary.crashes} crashes, ${summary.hangs} hangs, ${summary.unexpected} unexpected errors`);
    }
    process.exitCode = summary.crashes + summary.hangs + summary.unexpected === 0 ? 0 : 1;
  } finally {
    rmSync(options.workDir, { recursive: true, force: true });
  }
}

await main();
