// Context shift on stories260K against llama.cpp's own: llama-completion --context-shift --keep N
// on the same context prints the same greedy text, however many times the context fills, with one
// sequence or two in parallel, streamed or not; off by default; bad options are typed errors.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../lib/cli/main.js";
import { Llama, LlamaError } from "../../lib/index.js";
import { startServer } from "../../lib/server/index.js";
import { drain, errorOf, modelPath } from "../helpers.js";
import { llamaCompletionOutput } from "../llama-cpp-tools.js";

const STORIES = () => modelPath("stories260K.gguf");
// One thread everywhere: two llama.cpp threads that wait on each other stall on a busy 2-core machine.
// llama.cpp rounds a context up to 256 tokens, so that llama-completion's -c is at least this.
const N_CTX = 256;
const ONCE = "Once upon a time";
const PARK = "Lily and Tom went to the park";

/**
 * What llama-completion generates greedily after `prompt` on a context of N_CTX: with `keep`, it
 * shifts the context when it is full (--context-shift --keep), otherwise it stops there. It prints
 * the prompt (with SentencePiece's leading space), then the text, then a blank line.
 */
function llamaCompletion(prompt: string, nPredict: number, keep: number | null): string {
  const shift = keep === null ? [] : ["--context-shift", "--keep", String(keep)];
  const args = ["-m", STORIES(), "-p", prompt, "-c", String(N_CTX), ...shift, "-n", String(nPredict), "--temp", "0", "-t", "1", "-no-cnv", "--no-warmup"];
  const printed = llamaCompletionOutput(args).toString("utf8");
  if (!printed.startsWith(` ${prompt}`)) throw new Error(`llama-completion ${args.join(" ")} printed ${JSON.stringify(printed.slice(0, 80))}`);
  return printed.slice(prompt.length + 1);
}

/** The tokens a sequence holds after generating `generated` tokens (the last one never decoded) with llama-completion's shift. */
function heldAfter(promptTokens: number, generated: number, nKeep: number): { held: number; shifts: number } {
  let held = promptTokens;
  let shifts = 0;
  for (let i = 1; i < generated; i++) {
    if (held + 1 >= N_CTX) {
      held -= Math.floor((held - nKeep) / 2);
      shifts++;
    }
    held++;
  }
  return { held, shifts };
}

const golden = new Map<string, string>();
const goldenOf = (prompt: string, n: number, keep: number | null) => golden.get(`${prompt}|${n}|${keep}`)!;

beforeAll(() => {
  for (const [prompt, n, keep] of [
    [ONCE, 700, 0],
    [ONCE, 700, 3],
    [ONCE, 700, null],
    [PARK, 600, 5],
    [PARK, 600, -1],
    [PARK, 600, 40],
  ] as const) {
    golden.set(`${prompt}|${n}|${keep}`, llamaCompletion(prompt, n, keep));
  }
});

describe("context shift", () => {
  let shifting: Llama;
  let plain: Llama;
  beforeAll(async () => {
    shifting = await Llama.load({ modelPath: STORIES(), nCtx: N_CTX, nThreads: 1, contextShift: { keep: 0 } });
    plain = await Llama.load({ modelPath: STORIES(), nCtx: N_CTX, nThreads: 1 });
  });
  afterAll(async () => {
    await shifting?.dispose();
    await plain?.dispose();
  });

  it("greedy text equals llama-completion --context-shift --keep 0, through several shifts", async () => {
    const res = await shifting.createCompletion(ONCE, { maxTokens: 700, temperature: 0 });
    expect(res.choices[0]!.text).toBe(goldenOf(ONCE, 700, 0));
    expect(res.choices[0]!.finish_reason).toBe("length");
    expect(res.usage).toEqual({ prompt_tokens: 5, completion_tokens: 700, total_tokens: 705 });
    // The KV cache shifted as llama-completion's does: the BOS kept, positions contiguous, below the context.
    const { held, shifts } = heldAfter(5, 700, 1);
    expect(shifts).toBeGreaterThanOrEqual(4);
    expect(shifting.context!.positionRange(0)).toEqual([0, held - 1]);
  });

  it("keep counts prompt tokens after the BOS, as --keep does; -1 and a keep beyond the prompt keep the prompt", async () => {
    const a = await shifting.createCompletion(ONCE, { maxTokens: 700, temperature: 0, contextShift: { keep: 3 } });
    expect(a.choices[0]!.text).toBe(goldenOf(ONCE, 700, 3));
    expect(a.choices[0]!.text).not.toBe(goldenOf(ONCE, 700, 0));
    for (const keep of [5, -1, 40]) {
      const res = await shifting.createCompletion(PARK, { maxTokens: 600, temperature: 0, contextShift: { keep } });
      expect(res.choices[0]!.text, `keep ${keep}`).toBe(goldenOf(PARK, 600, keep));
    }
    expect(goldenOf(PARK, 600, 5)).not.toBe(goldenOf(PARK, 600, -1));
  });

  it("is off by default: the generation ends at the full context as llama-completion's does, finish_reason length", async () => {
    const res = await plain.createCompletion(ONCE, { maxTokens: 700, temperature: 0 });
    expect(res.choices[0]!.text).toBe(goldenOf(ONCE, 700, null));
    expect(res.choices[0]!.finish_reason).toBe("length");
    expect(res.usage.completion_tokens).toBe(N_CTX - 5);
    expect(plain.options.contextShift).toBeUndefined();
  });

  it("a request overrides the Llama's setting: on with a keep (true: keep 0), or off", async () => {
    const on = await plain.createCompletion(ONCE, { maxTokens: 700, temperature: 0, contextShift: { keep: 3 } });
    expect(on.choices[0]!.text).toBe(goldenOf(ONCE, 700, 3));
    const onTrue = await plain.createCompletion(ONCE, { maxTokens: 700, temperature: 0, contextShift: true });
    expect(onTrue.choices[0]!.text).toBe(goldenOf(ONCE, 700, 0));
    const off = await shifting.createCompletion(ONCE, { maxTokens: 700, temperature: 0, contextShift: false });
    expect(off.choices[0]!.text).toBe(goldenOf(ONCE, 700, null));
    expect(off.usage.completion_tokens).toBe(N_CTX - 5);
    // A chat goes past its context too.
    const messages = [{ role: "user" as const, content: "Tell me a story." }];
    const chat = await plain.createChatCompletion({ messages, maxTokens: 400, temperature: 0, contextShift: true, logitBias: { 2: -Infinity } });
    expect(chat.usage.completion_tokens).toBe(400);
    expect(chat.choices[0]!.finish_reason).toBe("length");
    const stopped = await plain.createChatCompletion({ messages, maxTokens: 400, temperature: 0, logitBias: { 2: -Infinity } });
    expect(stopped.usage.completion_tokens).toBe(N_CTX - stopped.usage.prompt_tokens);
  });

  it("streamed text equals the whole text", async () => {
    const chunks = await drain(shifting.createCompletion(ONCE, { maxTokens: 700, temperature: 0, contextShift: { keep: 3 }, stream: true }));
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(goldenOf(ONCE, 700, 3));
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");
  });

  it("a prompt that meets the shifted cache reuses only its kept tokens, and generates as a fresh context would", async () => {
    const first = await shifting.createCompletion(ONCE, { maxTokens: 300, temperature: 0 });
    const all = shifting.tokenize(ONCE + first.choices[0]!.text);
    // The text tokenizes back to the tokens generated, so that the next prompt is what the sequence holds.
    expect(all.length).toBe(5 + 300);
    const { held, shifts } = heldAfter(5, 300, 1);
    expect(shifts).toBe(1);
    const next = [all[0]!, ...all.slice(all.length - held, all.length)];
    expect(next.length).toBe(held + 1);
    const before = shifting.stats.tokens;
    const res = await shifting.createCompletion(next, { maxTokens: 20, temperature: 0 });
    // All of the prompt but the BOS was decoded again, and the 19 tokens generated after the first.
    expect(shifting.stats.tokens - before).toBe(next.length - 1 + 19);
    const fresh = await plain.createCompletion(next, { maxTokens: 20, temperature: 0 });
    expect(res.choices[0]!.text).toBe(fresh.choices[0]!.text);
  });

  it("a prompt longer than the context stays an error", async () => {
    const long = Array.from({ length: N_CTX + 1 }, () => 100);
    const err = await errorOf(() => shifting.createCompletion(long, { maxTokens: 10 }));
    expect(err).toBeInstanceOf(LlamaError);
    expect((err as LlamaError).code).toBe("CONTEXT_FULL");
  });
});

describe("context shift with two sequences", () => {
  it("each sequence shifts on its own, and each text equals its llama-completion", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: N_CTX, nThreads: 1, nParallel: 2, contextShift: { keep: 0 } });
    try {
      const [a, b] = await Promise.all([
        llm.createCompletion(ONCE, { maxTokens: 700, temperature: 0 }),
        llm.createCompletion(PARK, { maxTokens: 600, temperature: 0, contextShift: { keep: 5 } }),
      ]);
      expect(llm.stats.maxSequencesPerBatch).toBe(2);
      expect(a.choices[0]!.text).toBe(goldenOf(ONCE, 700, 0));
      expect(b.choices[0]!.text).toBe(goldenOf(PARK, 600, 5));
      // Streamed, side by side, and one that stops at its context next to one that shifts.
      const [c, d] = await Promise.all([
        drain(llm.createCompletion(ONCE, { maxTokens: 700, temperature: 0, contextShift: { keep: 3 }, stream: true })),
        llm.createCompletion(ONCE, { maxTokens: 700, temperature: 0, contextShift: false }),
      ]);
      expect(c.map((chunk) => chunk.choices[0]!.text).join("")).toBe(goldenOf(ONCE, 700, 3));
      expect(d.choices[0]!.text).toBe(goldenOf(ONCE, 700, null));
    } finally {
      await llm.dispose();
    }
  });
});

describe("context shift from the command line and the server", () => {
  it("llama-napi complete --context-shift --keep N prints llama-completion's text; --keep alone is a usage error", async () => {
    const run = async (argv: string[]) => {
      let stdout = "";
      let stderr = "";
      const sink = (add: (s: string) => void) => ({ isTTY: false, write: (s: string) => (add(s), true) });
      const io = { stdin: process.stdin, stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)) };
      const code = await runCli(argv, io as unknown as Parameters<typeof runCli>[1]);
      return { code, stdout, stderr };
    };
    const base = ["complete", "-m", STORIES(), "-p", ONCE, "-n", "700", "--temp", "0", "-t", "1", "-c", String(N_CTX)];
    expect(await run([...base, "--context-shift", "--keep", "3"])).toEqual({ code: 0, stdout: goldenOf(ONCE, 700, 3), stderr: "" });
    const alone = await run([...base, "--keep", "3"]);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/--keep needs --context-shift/);
  });

  it("the server takes llama-server's n_keep where it shifts, and refuses n_discard", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: N_CTX, nThreads: 1, contextShift: { keep: 0 } });
    const server = await startServer({ llama: llm, port: 0, maxTokensCap: 1000 });
    try {
      const post = async (body: object) => {
        const res = await fetch(`${server.url}/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as { choices: Array<{ text: string }>; error: { message: string; param: string } } };
      };
      const request = { prompt: ONCE, max_tokens: 700, temperature: 0 };
      expect((await post(request)).body.choices[0]!.text).toBe(goldenOf(ONCE, 700, 0));
      expect((await post({ ...request, n_keep: 3 })).body.choices[0]!.text).toBe(goldenOf(ONCE, 700, 3));
      const discard = await post({ ...request, n_discard: 10 });
      expect(discard.status).toBe(400);
      expect(discard.body.error.param).toBe("n_discard");
      expect((await post({ ...request, n_keep: -2 })).status).toBe(400);
    } finally {
      await server.close(0);
      await llm.dispose();
    }
  });
});

describe("context shift options", () => {
  let llm: Llama;
  beforeAll(async () => {
    llm = await Llama.load({ modelPath: STORIES(), nCtx: N_CTX, nThreads: 1 });
  });
  afterAll(() => llm?.dispose());

  it("bad values are TypeErrors and RangeErrors that name the option", async () => {
    const load = (contextShift: unknown, nCtx = N_CTX) => errorOf(() => Llama.load({ modelPath: STORIES(), nCtx, contextShift: contextShift as boolean }));
    const cases: Array<[unknown, ErrorConstructor, RegExp]> = [
      ["yes", TypeError, /^options\.contextShift must be a boolean or an object \{ keep \}, got string$/],
      [null, TypeError, /^options\.contextShift must be a boolean or an object \{ keep \}, got null$/],
      [[1], TypeError, /got an array$/],
      [{ keep: -2 }, RangeError, /^options\.contextShift\.keep must be >= -1, got -2$/],
      [{ keep: 1.5 }, RangeError, /^options\.contextShift\.keep must be an integer, got 1\.5$/],
      [{ keep: "3" }, TypeError, /^options\.contextShift\.keep must be an integer/],
      [{ kep: 3 }, TypeError, /^options\.contextShift\.kep is not a known option$/],
    ];
    for (const [value, type, message] of cases) {
      const err = await load(value);
      expect(err, JSON.stringify(value)).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(message);
      const request = await errorOf(() => llm.createCompletion(ONCE, { contextShift: value as boolean }));
      expect(request).toBeInstanceOf(type);
      expect((request as Error).message).toMatch(message);
      const chat = await errorOf(() => llm.createChatCompletion({ messages: [{ role: "user", content: "Hi" }], contextShift: value as boolean }));
      expect(chat).toBeInstanceOf(type);
    }
    // A context too small to shift in.
    const small = await load(true, 4);
    expect(small).toBeInstanceOf(RangeError);
    expect((small as Error).message).toMatch(/^options\.contextShift needs a context of at least 8 tokens per sequence, got 4$/);
    const tiny = await Llama.load({ modelPath: STORIES(), nCtx: 4, nThreads: 1 });
    try {
      expect(await errorOf(() => tiny.createCompletion([1, 2], { contextShift: { keep: 0 } }))).toBeInstanceOf(RangeError);
      expect((await tiny.createCompletion([1, 2], { maxTokens: 5, contextShift: false, temperature: 0 })).usage.completion_tokens).toBe(2);
    } finally {
      await tiny.dispose();
    }
  });
});
