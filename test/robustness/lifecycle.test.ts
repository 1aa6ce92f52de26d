// Handle lifecycle: double dispose is a no-op, a dropped model is freed by the garbage collector,
// the process exits cleanly with live models, contexts and work in flight, a worker thread runs
// its own model, and load/dispose and completion cycles keep RSS flat. The scenarios that end a
// process or need --expose-gc run in child node processes on a compiled copy of lib/
// (scripts/compiled-lib.mjs). dispose() during a decode is covered in realistic.test.ts.
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaError, LlamaModel } from "../../lib/index.js";
import { compiledLibrary, type CompiledLibrary } from "../../scripts/compiled-lib.mjs";
import { modelPath, repoRoot, runNodeChild, type ChildResult } from "../helpers.js";

let library: CompiledLibrary;
let scratch: string;
let stories: string;
beforeAll(() => {
  library = compiledLibrary();
  scratch = mkdtempSync(join(tmpdir(), "llama-napi-lifecycle-"));
  stories = modelPath("stories260K.gguf");
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * Runs `script` (CommonJS) in a new node process. The script finds the library in `lib`, the test
 * model in `MODEL`, and `STEP(...)` prints a line on stdout.
 */
function runNode(script: string, options: { nodeArgs?: string[]; env?: Record<string, string> } = {}): Promise<ChildResult> {
  const prelude = `
    const lib = require(require("node:path").join(process.env.LIB, "index.js"));
    const MODEL = process.env.MODEL;
    const STEP = (...parts) => console.log(parts.join(" "));
  `;
  return runNodeChild([...(options.nodeArgs ?? []), "-e", prelude + script], {
    env: { ...process.env, ...library.env, LIB: library.lib, MODEL: stories, ...options.env },
  });
}

/** Nothing on stderr that llama.cpp, the C++ runtime or node print when they die. */
function expectQuietExit(result: ChildResult, code = 0): void {
  expect(result.stderr).not.toMatch(/terminate called|GGML_ASSERT|Assertion|Segmentation|double free|corrupted|FATAL ERROR/i);
  expect({ code: result.code, signal: result.signal }).toEqual({ code, signal: null });
}

describe("dispose", () => {
  it("a second dispose is a no-op, and disposed handles refuse work with DISPOSED", async () => {
    const model = await LlamaModel.load(stories);
    const context = await model.createContext({ nCtx: 64, nThreads: 1 });
    const sampler = model.createSampler({ temperature: 0 });

    sampler.dispose();
    sampler.dispose();
    sampler[Symbol.dispose]();
    expect(() => sampler.describe()).toThrow(expect.objectContaining({ code: "DISPOSED" }));

    const first = context.dispose();
    expect(context.dispose()).toBe(first);
    await first;
    await context[Symbol.asyncDispose]();
    await expect(context.decode({ tokens: [1] })).rejects.toMatchObject({ code: "DISPOSED" });

    model.dispose();
    model.dispose();
    model[Symbol.dispose]();
    expect(model.disposed).toBe(true);
    const error = (() => {
      try {
        model.tokenize("x");
      } catch (err) {
        return err;
      }
    })();
    expect(error).toBeInstanceOf(LlamaError);
    expect(error).toMatchObject({ code: "DISPOSED" });
    await expect(model.createContext()).rejects.toMatchObject({ code: "DISPOSED" });
  });
});

describe("garbage collection", () => {
  it("models, contexts and samplers dropped without dispose are freed by the GC", async () => {
    // The model file is mapped while llama.cpp holds the model: /proc/self/maps shows when the
    // native model is really gone, not merely its JavaScript wrapper.
    const path = join(scratch, "gc-model.gguf");
    copyFileSync(stories, path);
    const result = await runNode(
      `
      const { readFileSync } = require("node:fs");
      const mappings = () => readFileSync("/proc/self/maps", "utf8").split("\\n").filter((l) => l.endsWith(MODEL)).length;
      const collect = async () => {
        for (let i = 0; i < 20; i++) {
          global.gc();
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      async function useAndDrop(withContext) {
        const model = await lib.LlamaModel.load(MODEL);
        model.tokenize("Once upon a time");
        if (!withContext) return;
        const context = await model.createContext({ nCtx: 64, nThreads: 1 });
        const sampler = model.createSampler({ temperature: 0 });
        for await (const t of lib.generateTokens(context, sampler, model.tokenize("Once"), { maxTokens: 2 })) {}
      }
      (async () => {
        for (let i = 0; i < 10; i++) await useAndDrop(i % 2 === 0);
        STEP("live", mappings());
        await collect();
        STEP("collected", mappings());
      })();
      `,
      { nodeArgs: ["--expose-gc"], env: { MODEL: path } },
    );
    expectQuietExit(result);
    const counts = Object.fromEntries(result.stdout.trim().split("\n").map((line) => line.split(" ")).map(([k, v]) => [k, Number(v)]));
    expect(counts.live).toBeGreaterThan(0);
    expect(counts.collected).toBe(0);
  });
});

describe("streams dropped unfinished", () => {
  it("a stream its reader drops half-read is collected and frees its sequence", async () => {
    const result = await runNode(
      `
      (async () => {
        const llm = await lib.Llama.load({ modelPath: MODEL, nCtx: 128, nThreads: 1 });
        async function readTwoAndDrop() {
          const stream = llm.createCompletion("Once upon a time", { maxTokens: 100, temperature: 0, stream: true });
          await stream.next();
          await stream.next();
        }
        await readTwoAndDrop();
        // The stream waits for its reader, holding the only sequence.
        STEP("held", llm.active);
        for (let i = 0; i < 20 && llm.active > 0; i++) {
          global.gc();
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        STEP("collected", llm.active);
        const next = llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
        const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 10000).unref());
        const res = await Promise.race([next, timeout]);
        STEP("next", res === null ? "blocked" : JSON.stringify(res.choices[0].text));
        await llm.dispose();
      })();
      `,
      { nodeArgs: ["--expose-gc"] },
    );
    expectQuietExit(result);
    expect(result.stdout.trim().split("\n")).toEqual(["held 1", "collected 0", 'next ", there was a"']);
  });

  it("a stream whose reader waits for its next chunk is never collected, however often the GC runs", async () => {
    // The waiting reader is held only by the stream it waits on: a GC must not take them both.
    const result = await runNode(
      `
      (async () => {
        const llm = await lib.Llama.load({ modelPath: MODEL, nCtx: 128, nThreads: 1 });
        // The only sequence is busy, so the stream's first chunk is a while coming.
        const busy = llm.createCompletion("Once upon a time", { maxTokens: 60, temperature: 0 });
        const collecting = setInterval(() => global.gc(), 1);
        setTimeout(() => { STEP("hung"); process.exit(2); }, 20000).unref();
        let text = "";
        for await (const chunk of llm.createCompletion("Once upon a time", { maxTokens: 20, temperature: 0, stream: true })) {
          text += chunk.choices[0].text;
        }
        clearInterval(collecting);
        STEP("read", text === (await busy).choices[0].text.slice(0, text.length), text.length > 0);
        await llm.dispose();
      })();
      `,
      { nodeArgs: ["--expose-gc"] },
    );
    expectQuietExit(result);
    expect(result.stdout.trim()).toBe("read true true");
  });
});

describe("process exit", () => {
  const setup = `
    async function live() {
      const model = await lib.LlamaModel.load(MODEL);
      const context = await model.createContext({ nCtx: 256, nBatch: 256, nThreads: 2 });
      const sampler = model.createSampler({ temperature: 0 });
      return { model, context, sampler };
    }
  `;

  it("with live models, contexts and samplers is clean", async () => {
    const result = await runNode(`${setup}
      (async () => {
        const a = await live();
        const b = await live();
        for await (const t of lib.generateTokens(a.context, a.sampler, a.model.tokenize("Once upon a time"), { maxTokens: 4 })) {}
        STEP("done");
      })();
    `);
    expectQuietExit(result);
    expect(result.stdout).toBe("done\n");
  });

  it("process.exit() during a decode is clean", async () => {
    const result = await runNode(`${setup}
      (async () => {
        const { model, context } = await live();
        const tokens = Array.from({ length: 256 }, (_, i) => 1 + (i % 500));
        context.decode({ tokens, logits: "none" });
        setImmediate(() => { STEP("exiting"); process.exit(3); });
      })();
    `);
    expectQuietExit(result, 3);
    expect(result.stdout).toBe("exiting\n");
  });

  it("process.exit() while a completion generates ahead natively is clean", async () => {
    // The native run waits for JS to catch up; process.exit joins its thread without telling it.
    const result = await runNode(`
      (async () => {
        const llm = await lib.Llama.load({ modelPath: MODEL, nCtx: 256, nThreads: 2 });
        let chunks = 0;
        for await (const _ of llm.createCompletion("Once upon a time", { maxTokens: 200, temperature: 0, stream: true })) {
          if (++chunks === 3) { STEP("exiting"); process.exit(3); }
        }
      })();
    `);
    expectQuietExit(result, 3);
    expect(result.stdout).toBe("exiting\n");
  });

  it("process.exit() during a model load is clean", async () => {
    // The first progress report comes from inside llama.cpp's load, on the loading thread.
    const result = await runNode(`
      lib.LlamaModel.load(MODEL, { useMmap: false, onProgress: () => { STEP("loading"); process.exit(0); } });
    `);
    expectQuietExit(result);
    expect(result.stdout).toBe("loading\n");
  });

  it("an uncaught exception with live handles exits with its error, not a crash", async () => {
    const result = await runNode(`${setup}
      live().then(() => { throw new Error("boom"); });
    `);
    expect(result.stderr).toContain("Error: boom");
    expectQuietExit({ ...result, stderr: result.stderr.replace(/Error: boom[\s\S]*/, "") }, 1);
  });
});

describe("worker threads", () => {
  it("workers load and use their own models beside the main thread's, and exit", async () => {
    const result = await runNode(`
      const { Worker } = require("node:worker_threads");
      async function greedy(L) {
        const model = await L.LlamaModel.load(process.env.MODEL);
        const context = await model.createContext({ nCtx: 64, nThreads: 1 });
        const out = [];
        for await (const t of L.generateTokens(context, model.createSampler({ temperature: 0 }), model.tokenize("Once upon a time"), { maxTokens: 8 })) out.push(t);
        return { model, context, out };
      }
      const workerCode = \`
        const { parentPort, workerData } = require("node:worker_threads");
        const L = require(require("node:path").join(process.env.LIB, "index.js"));
        (\${greedy.toString()})(L).then(({ model, out }) => {
          parentPort.postMessage(out);
          // Odd workers leave their model for the environment's cleanup; even ones dispose it.
          if (workerData % 2 === 0) model.dispose();
        });
      \`;
      const runWorker = (i) => new Promise((resolve, reject) => {
        const worker = new Worker(workerCode, { eval: true, workerData: i });
        let tokens;
        worker.on("message", (m) => { tokens = m; });
        worker.on("error", reject);
        worker.on("exit", (code) => resolve({ code, tokens }));
      });
      (async () => {
        const [mine, ...workers] = await Promise.all([greedy(lib), runWorker(0), runWorker(1), runWorker(2)]);
        for (const w of workers) STEP("worker", w.code, JSON.stringify(w.tokens) === JSON.stringify(mine.out));
        // The main thread's model still works after the workers' environments were torn down.
        STEP("main", mine.model.tokenize("Once").length > 0);
      })();
    `);
    expectQuietExit(result);
    expect(result.stdout).toBe("worker 0 true\nworker 0 true\nworker 0 true\nmain true\n");
  });

  it("terminating workers in the middle of their decodes is clean", async () => {
    // Terminated at several moments: while JavaScript calls into the addon, while the decode runs
    // on the thread pool, as it completes. Each used to be able to end the whole process with
    // node-addon-api's fatal "Error::ThrowAsJavaScriptException napi_throw".
    const result = await runNode(`
      const { Worker } = require("node:worker_threads");
      const code = \`
        const { parentPort } = require("node:worker_threads");
        const L = require(require("node:path").join(process.env.LIB, "index.js"));
        (async () => {
          const model = await L.LlamaModel.load(process.env.MODEL);
          const context = await model.createContext({ nCtx: 512, nBatch: 512, nThreads: 2 });
          const tokens = Array.from({ length: 512 }, (_, i) => 1 + (i % 500));
          parentPort.postMessage("decoding");
          for (;;) await context.decode({ tokens, logits: "none" }).then(() => context.clear());
        })();
      \`;
      (async () => {
        for (const delay of [0, 0, 1, 2, 5, 10, 20, 40]) {
          const worker = new Worker(code, { eval: true });
          await new Promise((resolve) => worker.once("message", resolve));
          await new Promise((resolve) => setTimeout(resolve, delay));
          STEP("terminated", await worker.terminate());
        }
      })();
    `);
    expectQuietExit(result);
    expect(result.stdout).toBe("terminated 1\n".repeat(8));
  });
});

describe("leaks", () => {
  it("load/dispose cycles and short completions keep RSS flat (scripts/soak.mjs, short run)", async () => {
    // Limits above the allocator's noise in a short run (up to about 4 KiB per completion seen
    // here; long runs show well under 1 KiB) and below the smallest leak that matters: a sampler
    // is about 13 KiB, a context 1.5 MiB (a new one every 100 completions), a model its mapped file.
    const result = await runNodeChild(
      [join(repoRoot, "scripts", "soak.mjs"), "--loads", "300", "--completions", "3000", "--max-load-slope", "65536", "--max-completion-slope", "8192", "--json"],
      { timeout: 0 },
    );
    const summary = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as { failures: string[]; completions: { tokensGenerated: number } };
    expect(summary.failures).toEqual([]);
    expect(summary.completions.tokensGenerated).toBe(3000 * 8);
    expectQuietExit(result);
  });
});
