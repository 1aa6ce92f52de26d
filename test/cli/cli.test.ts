// The `llama-napi` command line: commands run in-process with captured streams (fake terminals
// included), and the installed launcher run as a process for exit codes, lazy addon loading and
// the server's signal handling.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "../../lib/index.js";
import { rerankerModel } from "../fixtures.js";
import { modelPath, repoRoot } from "../helpers.js";
import { writeLoraFixture } from "../lora-fixture.js";
import { runCli } from "../../lib/cli/main.js";
import { run, streams } from "./run-cli.js";

const STORIES = () => modelPath("stories260K.gguf");
// A small context and one thread: quick to load, and no thread contention on a busy machine.
const FAST = ["-t", "1", "-c", "256"];

describe("llama-napi commands", () => {
  let llama: Llama;
  beforeAll(async () => {
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
  });
  afterAll(() => llama?.dispose());

  it("--help on every command, a command list, and usage errors for the rest", async () => {
    for (const command of ["complete", "chat", "embed", "rerank", "tokenize", "inspect", "serve"]) {
      const help = await run([command, "--help"]);
      expect(help.code, command).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: llama-napi ${command} `));
      expect((await run(["help", command])).stdout).toBe(help.stdout);
    }
    const list = await run(["--help"]);
    expect(list.code).toBe(0);
    for (const command of ["complete", "chat", "embed", "rerank", "tokenize", "inspect", "quantize", "bench", "synth", "serve"]) {
      expect(list.stdout).toMatch(new RegExp(`^  ${command} `, "m"));
    }
    expect((await run([])).code).toBe(2);
    const unknown = await run(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it("complete streams the library's text to stdout", async () => {
    const res = await run(["complete", "-m", STORIES(), "-p", "Once upon a time", "-n", "10", "--temp", "0", ...FAST]);
    expect(res).toEqual({ code: 0, stdout: ", there was a little girl named Lily", stderr: "" });
    // On a terminal the output ends with a newline; the prompt can come from stdin.
    const tty = await run(["complete", "-m", STORIES(), "-p", "-", "-n", "10", "--temp", "0", ...FAST], { stdin: "Once upon a time", tty: true });
    expect(tty.stdout).toBe(", there was a little girl named Lily\n");
  });

  it("--lora FILE[:SCALE] and --draft FILE|ngram reach the model: the text equals the library's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llama-napi-cli-lora-"));
    try {
      const adapter = join(dir, "a.gguf");
      await writeLoraFixture(adapter, { baseModelPath: STORIES(), seed: 0 });
      const expected = (await llama.createCompletion("Once upon a time", { maxTokens: 30, temperature: 0, lora: [{ path: adapter, scale: 0.5 }] })).choices[0]!.text;
      const base = ["complete", "-m", STORIES(), "-p", "Once upon a time", "-n", "30", "--temp", "0", ...FAST];
      expect(await run([...base, "--lora", `${adapter}:0.5`])).toEqual({ code: 0, stdout: expected, stderr: "" });
      expect((await run([...base, "--lora", `${adapter}:0.5`, "--draft", STORIES(), "--draft-max", "4"])).stdout).toBe(expected);
      expect((await run([...base, "--lora", `${adapter}:0.5`, "--draft", "ngram", "--draft-ngram-size", "2"])).stdout).toBe(expected);
      const usage = await run([...base, "--draft-max", "4"]);
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/need --draft/);
      expect((await run([...base, "--draft", "ngram", "--draft-p-min", "0.5"])).code).toBe(2);
      const bad = await run([...base, "--lora", join(dir, "missing.gguf")]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/not found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("every sampling flag reaches the completion: --json equals the library's result", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llama-napi-cli-"));
    try {
      const grammar = join(dir, "lowercase.gbnf");
      writeFileSync(grammar, 'root ::= [ a-z]+ "."\n');
      const flags = ["-n", "12", "--temp", "0.9", "--top-p", "0.9", "--top-k", "30", "--min-p", "0.02", "--typical", "0.95"];
      flags.push("--repeat-penalty", "1.1", "--repeat-last-n", "32", "--presence-penalty", "0.3", "--frequency-penalty", "0.2");
      flags.push("--seed", "11", "--stop", "zzz", "--logit-bias", "2=-inf", "--logit-bias", "300+1.5", "--grammar-file", grammar);
      const res = await run(["complete", "-m", STORIES(), "-p", "Lily", "--json", "--logprobs", "2", ...flags, ...FAST]);
      expect(res.code).toBe(0);
      const completion = JSON.parse(res.stdout);
      const expected = await llama.createCompletion("Lily", {
        maxTokens: 12, temperature: 0.9, topP: 0.9, topK: 30, minP: 0.02, typicalP: 0.95, repeatPenalty: 1.1, repeatLastN: 32,
        presencePenalty: 0.3, frequencyPenalty: 0.2, seed: 11, stop: ["zzz"], logitBias: { 2: -Infinity, 300: 1.5 },
        grammar: readFileSync(grammar, "utf8"), logprobs: 2,
      });
      expect(completion.object).toBe("text_completion");
      expect(completion.choices[0].text).toBe(expected.choices[0]!.text);
      expect(completion.choices[0].text).toMatch(/^[ a-z]+\.?$/);
      expect(completion.choices[0].logprobs.tokens).toEqual(expected.choices[0]!.logprobs!.tokens);
      expect(completion.usage).toEqual(expected.usage);

      const mirostat = await run(["complete", "-m", STORIES(), "-p", "Lily", "--json", "-n", "8", "--seed", "5", "--mirostat", "2", "--mirostat-tau", "4", "--mirostat-eta", "0.2", ...FAST]);
      const direct = await llama.createCompletion("Lily", { maxTokens: 8, seed: 5, mirostat: { mode: 2, tau: 4, eta: 0.2 } });
      expect(JSON.parse(mirostat.stdout).choices[0].text).toBe(direct.choices[0]!.text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("usage errors exit 2 naming the flag; runtime errors exit 1 with one line", async () => {
    const usage: Array<[string[], RegExp]> = [
      [["complete", "-m", STORIES(), "-p", "x", "--top-p", "2"], /--top-p must be at most 1/],
      [["complete", "-m", STORIES(), "-p", "x", "-n", "many"], /--max-tokens needs a number/],
      [["complete", "-m", STORIES(), "-p", "x", "--bogus"], /Unknown option '--bogus'/],
      [["complete", "-p", "x"], /--model is required/],
      [["complete", "-m", STORIES()], /--prompt \(or --file\) is required/],
      [["complete", "-m", STORIES(), "-p", "x", "--logit-bias", "two"], /--logit-bias needs ID=BIAS/],
      [["complete", "-m", STORIES(), "-p", "x", "--logprobs", "2"], /--logprobs needs --json/],
      [["chat", "-m", STORIES(), "--flash-attn", "maybe"], /--flash-attn must be one of on, off, auto/],
      [["tokenize", "-m", STORIES(), "a", "b"], /unexpected argument "b"/],
      [["serve", "-m", STORIES(), "--port", "70000"], /--port must be at most 65535/],
    ];
    for (const [argv, message] of usage) {
      const res = await run(argv);
      expect(res.code, argv.join(" ")).toBe(2);
      expect(res.stderr).toMatch(message);
      expect(res.stderr).toMatch(new RegExp(`Run 'llama-napi ${argv[0]} --help'`));
    }
    const missing = await run(["complete", "-m", "/nonexistent/model.gguf", "-p", "x"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("llama-napi complete: model file not found: /nonexistent/model.gguf\n");
  });

  it("shows a progress bar while the model loads on a terminal, and nothing otherwise", async () => {
    const tty = await run(["complete", "-m", STORIES(), "-p", "Once", "-n", "2", ...FAST], { stderrTty: true });
    expect(tty.stderr).toMatch(/\rLoading stories260K\.gguf \[#+\] 100%/);
    expect(tty.stderr.endsWith("\r\x1b[2K")).toBe(true);
    const piped = await run(["complete", "-m", STORIES(), "-p", "Once", "-n", "2", ...FAST]);
    expect(piped.stderr).toBe("");
  });

  it("chat -p answers one message in the chat template, with --system; --json prints the object", async () => {
    const messages = [
      { role: "system", content: "You are a storyteller." },
      { role: "user", content: "Tell me a story." },
    ];
    const expected = await llama.createChatCompletion({ messages, maxTokens: 12, temperature: 0 });
    const args = ["chat", "-m", STORIES(), "--system", "You are a storyteller.", "-p", "Tell me a story.", "-n", "12", "--temp", "0", ...FAST];
    const res = await run(args);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(expected.choices[0]!.message.content + "\n");
    const json = JSON.parse((await run([...args, "--json"])).stdout);
    expect(json.object).toBe("chat.completion");
    expect(json.choices[0].message.content).toBe(expected.choices[0]!.message.content);
  });

  it("chat from a pipe: each line is a turn and the conversation carries over", async () => {
    const res = await run(["chat", "-m", STORIES(), "-n", "8", "--temp", "0", ...FAST], { stdin: "Hello\n\nWho is Lily?\n" });
    expect(res.code).toBe(0);
    const first = await llama.createChatCompletion({ messages: [{ role: "user", content: "Hello" }], maxTokens: 8, temperature: 0 });
    const firstReply = first.choices[0]!.message.content;
    const second = await llama.createChatCompletion({
      messages: [
        { role: "user", content: "Hello" },
        { role: "assistant", content: firstReply },
        { role: "user", content: "Who is Lily?" },
      ],
      maxTokens: 8,
      temperature: 0,
    });
    expect(res.stdout).toBe(`${firstReply}\n${second.choices[0]!.message.content}\n`);
  });

  it("chat on a terminal is an interactive session with /reset and /exit", async () => {
    const stdin = new PassThrough();
    const io = streams({ stdin, tty: true });
    const done = runCli(["chat", "-m", STORIES(), "-n", "8", "--temp", "0", ...FAST], io);
    const reply = (await llama.createChatCompletion({ messages: [{ role: "user", content: "Hello" }], maxTokens: 8, temperature: 0 })).choices[0]!.message.content!;
    const waitFor = async (text: string, from: number) => {
      const deadline = Date.now() + 20_000;
      while (io.stdout.text.indexOf(text, from) < 0) {
        if (Date.now() > deadline) throw new Error(`no ${JSON.stringify(text)} in ${JSON.stringify(io.stdout.text)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return io.stdout.text.indexOf(text, from) + text.length;
    };
    let at = await waitFor("> ", 0);
    stdin.write("Hello\r");
    at = await waitFor(reply, at);
    at = await waitFor("> ", at);
    stdin.write("/reset\r");
    at = await waitFor("(conversation cleared)", at);
    // After /reset the same message gets the same first reply: the history is gone.
    stdin.write("Hello\r");
    at = await waitFor(reply, at);
    await waitFor("> ", at);
    stdin.write("/exit\r");
    expect(await done).toBe(0);
  });

  it("embed prints the library's vectors, one JSON array per text or line", async () => {
    const expected = await llama.embed(["hello", "Lily"]);
    const res = await run(["embed", "-m", STORIES(), "hello", "Lily", ...FAST]);
    expect(res.code).toBe(0);
    expect(res.stdout.trim().split("\n").map((line) => JSON.parse(line))).toEqual(expected.map((v) => Array.from(v)));
    const piped = await run(["embed", "-m", STORIES(), "--normalize", ...FAST], { stdin: "hello\n" });
    const [unit] = piped.stdout.trim().split("\n").map((line) => JSON.parse(line) as number[]);
    expect(Math.hypot(...unit!)).toBeCloseTo(1, 5);
    const json = JSON.parse((await run(["embed", "-m", STORIES(), "--json", "hello", ...FAST])).stdout);
    expect(json).toMatchObject({ object: "list", data: [{ object: "embedding", index: 0, embedding: Array.from(expected[0]!) }] });
    expect(json.usage.prompt_tokens).toBe(llama.tokenize("hello").length);
  });

  it("rerank prints the library's ranking (score, index, text), or llama-server's object with --json", async () => {
    const model = await rerankerModel("plain");
    const query = "What do cats eat?";
    const documents = ["Cats eat fish.", "Paris is in France.", "Kittens drink milk."];
    const reranker = await Llama.load({ modelPath: model, nCtx: 256, nThreads: 1 });
    const expected = await reranker.createRerank(query, documents).finally(() => reranker.dispose());
    const res = await run(["rerank", "-m", model, "-q", query, ...documents, ...FAST]);
    expect(res).toEqual({ code: 0, stdout: expected.results.map((r) => `${r.relevance_score.toFixed(6)}\t${r.index}\t${documents[r.index]}\n`).join(""), stderr: "" });
    expect((await run(["rerank", "-m", model, "-q", query, ...FAST], { stdin: documents.join("\n") })).stdout).toBe(res.stdout);
    const dir = mkdtempSync(join(tmpdir(), "llama-napi-rerank-"));
    try {
      const file = join(dir, "documents.txt");
      writeFileSync(file, `${documents.join("\r\n")}\n\n`);
      const json = await run(["rerank", "-m", model, "--query", query, "--file", file, "--top-n", "2", "--json", ...FAST]);
      expect(JSON.parse(json.stdout)).toEqual({ ...expected, results: expected.results.slice(0, 2) });
      expect((await run(["rerank", "-m", model, "-q", query, "-f", file, "more", ...FAST])).code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await run(["rerank", "-m", model, "a", ...FAST])).stderr).toMatch(/--query is required/);
    expect((await run(["rerank", "-m", model, "-q", query, ...FAST], { stdin: "\n \n" })).stderr).toMatch(/nothing to rerank/);
    expect((await run(["rerank", "-m", model, "-q", query, "--top-n", "0", "a", ...FAST])).code).toBe(2);
    const notReranker = await run(["rerank", "-m", STORIES(), "-q", query, "a", ...FAST]);
    expect(notReranker.code).toBe(1);
    expect(notReranker.stderr).toMatch(/rank head/);
  });

  it("tokenize prints ids and pieces", async () => {
    const res = await run(["tokenize", "-m", STORIES(), "Hello world"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(['  1 "<s>"', '346 " He"', '306 "ll"', '414 "o"', '263 " w"', '304 "or"', '341 "ld"', ""].join("\n"));
    expect((await run(["tokenize", "-m", STORIES(), "--ids", "--no-bos", "Hello"])).stdout).toBe("[346,306,414]\n");
    const json = JSON.parse((await run(["tokenize", "-m", STORIES(), "--json"], { stdin: "Hi" })).stdout);
    expect(json).toEqual(llama.tokenize("Hi").map((id) => ({ id, piece: id === 1 ? "<s>" : expect.any(String) })));
  });

  it("inspect shows metadata, tensor types and memory without loading weights; --json has it all", async () => {
    const res = await run(["inspect", STORIES(), "-c", "512"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^model +llama, "llama"$/m);
    expect(res.stdout).toMatch(/^shape +5 layers, embedding 64, 8 heads \(4 KV\), feed-forward 172, vocabulary 512$/m);
    expect(res.stdout).toMatch(/^ {2}F32 +48 tensors +1\.12 MiB$/m);
    // llama.cpp reports "KV buffer size = 0.31 MiB" for this model at 512 tokens.
    expect(res.stdout).toMatch(/^ {2}KV cache +320\.00 KiB \(f16\)$/m);
    expect(res.stdout).toMatch(/^ {2}llama\.attention\.layer_norm_rms_epsilon = 0\.00001$/m);
    expect(res.stdout).toMatch(/^ {2}tokenizer\.ggml\.tokens = \[string x 512\]$/m);

    const json = JSON.parse((await run(["inspect", STORIES(), "--json", "--tensors", "-c", "1024", "--parallel", "2"])).stdout);
    expect(json.memory).toMatchObject({ nCtx: 1024, nParallel: 2, kvCacheBytes: 4 * 327680, weightsBytes: json.tensorTypes[0].bytes });
    expect(json.tensors).toHaveLength(48);
    expect(json.tensors[0]).toEqual({ name: expect.any(String), type: "F32", shape: expect.any(Array), bytes: expect.any(Number) });
    expect(json.metadata["tokenizer.ggml.tokens"]).toEqual({ type: "string", length: 512 });
  });

  it("inspect rejects malformed files with the reader's one-line error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "llama-napi-cli-"));
    try {
      const model = readFileSync(STORIES());
      writeFileSync(join(dir, "truncated.gguf"), model.subarray(0, 2000));
      writeFileSync(join(dir, "magic.gguf"), Buffer.concat([Buffer.from("GGML"), model.subarray(4)]));
      const truncated = await run(["inspect", join(dir, "truncated.gguf")]);
      expect(truncated.code).toBe(1);
      expect(truncated.stderr).toMatch(/^llama-napi inspect: .*"tokenizer\.ggml\.tokens" at byte 61 .*\n$/);
      expect(truncated.stderr.split("\n")).toHaveLength(2);
      const magic = await run(["inspect", join(dir, "magic.gguf")]);
      expect(magic.stderr).toBe('llama-napi inspect: bad magic at byte 0: "GGML", expected "GGUF"\n');
      expect((await run(["inspect", join(dir, "absent.gguf")])).code).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the llama-napi launcher (bin/llama-napi.js over dist/)", () => {
  const bin = join(repoRoot, "bin", "llama-napi.js");
  const exec = (args: string[]) => {
    try {
      return { code: 0, stdout: execFileSync(process.execPath, [bin, ...args], { encoding: "utf8", stdio: "pipe" }), stderr: "" };
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      return { code: e.status, stdout: e.stdout, stderr: e.stderr };
    }
  };

  /** `llama-napi serve` on stories260K at a free port, once it says where it listens; `log()`: its stderr so far. */
  const startServe = async (args: string[]) => {
    const child = spawn(process.execPath, [bin, "serve", "-m", STORIES(), "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stderr.setEncoding("utf8");
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr.on("data", (chunk: string) => {
          log += chunk;
          const match = /at (http:\/\/127\.0\.0\.1:\d+)\/v1 /.exec(log);
          if (match) resolve(match[1]!);
        });
        child.once("exit", () => reject(new Error(`serve exited: ${log}`)));
      });
      return { child, url, log: () => log, exited };
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
  };

  beforeAll(() => {
    execFileSync(process.execPath, [join(repoRoot, "scripts", "build-ts.mjs")], { stdio: "pipe" });
  });

  it("is the package's bin, prints its version, and has --help on every command", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
    expect(pkg.bin).toEqual({ "llama-napi": "bin/llama-napi.js" });
    expect(exec(["--version"]).stdout).toBe(`${pkg.version}\n`);
    for (const command of ["complete", "chat", "embed", "rerank", "tokenize", "inspect", "serve", "rpc-server", "quantize", "bench", "synth"]) {
      const help = exec([command, "--help"]);
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toMatch(/usage/i);
    }
  });

  it("exit codes: 0 on success, 1 with one line on a runtime error, 2 on a usage error", () => {
    expect(exec(["tokenize", "-m", STORIES(), "--ids", "Hi"])).toEqual({ code: 0, stdout: "[1,320,417]\n", stderr: "" });
    const runtime = exec(["inspect", join(repoRoot, "package.json")]);
    expect(runtime.code).toBe(1);
    expect(runtime.stderr).toMatch(/^llama-napi inspect: bad magic at byte 0: .*\n$/);
    expect(runtime.stderr.split("\n")).toHaveLength(2);
    expect(exec(["complete", "--max-tokens"]).code).toBe(2);
  });

  it("inspect and --help never load the addon; commands that run the model do", () => {
    const script = (argv: string[]) => `
      const { runCli } = require(${JSON.stringify(join(repoRoot, "dist", "cjs", "cli", "main.js"))});
      const quiet = { stdin: process.stdin, stdout: { write() {} }, stderr: process.stderr };
      runCli(${JSON.stringify(argv)}, quiet).then((code) => {
        const addon = Object.keys(require.cache).some((path) => path.endsWith(".node"));
        console.log(JSON.stringify({ code, addon }));
        process.exit(0);
      });`;
    const loads = (argv: string[]) => JSON.parse(execFileSync(process.execPath, ["-e", script(argv)], { encoding: "utf8" }).trim());
    expect(loads(["inspect", STORIES()])).toEqual({ code: 0, addon: false });
    expect(loads(["serve", "--help"])).toEqual({ code: 0, addon: false });
    expect(loads(["--help"])).toEqual({ code: 0, addon: false });
    expect(loads(["tokenize", "-m", STORIES(), "x"])).toEqual({ code: 0, addon: true });
  });

  it("serve: on SIGTERM it refuses new connections, finishes the stream in flight and exits 0", async () => {
    const { child, url, log, exited } = await startServe(["-t", "1", "-c", "2048"]);
    try {

      const body = JSON.stringify({ prompt: "Once upon a time", max_tokens: 1500, logit_bias: { "2": -100 }, stream: true });
      let stream = "";
      let streamOver = false;
      const streamEnded = new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${url}/v1/completions`, { method: "POST", agent: false }, (res) => {
          res.setEncoding("utf8");
          res.once("data", () => child.kill("SIGTERM"));
          res.on("data", (chunk: string) => (stream += chunk));
          res.on("end", () => {
            streamOver = true;
            resolve();
          });
        });
        req.on("error", reject);
        req.end(body);
      });
      // Once the signal is handled, new connections are refused while the stream goes on.
      let refused = false;
      const deadline = Date.now() + 20_000;
      while (!refused && Date.now() < deadline) {
        refused = await new Promise<boolean>((resolve) => {
          const probe = httpRequest(`${url}/health`, { agent: false }, (res) => {
            res.resume();
            resolve(false);
          });
          probe.on("error", (err) => resolve((err as NodeJS.ErrnoException).code === "ECONNREFUSED"));
          probe.end();
        });
        if (!refused) await new Promise((r) => setTimeout(r, 20));
      }
      expect(refused).toBe(true);
      expect(streamOver).toBe(false);
      await streamEnded;
      expect(await exited).toBe(0);
      const events = stream.split("\n\n").filter((e) => e.startsWith("data: "));
      expect(events.at(-1)).toBe("data: [DONE]");
      expect(JSON.parse(events.at(-2)!.slice(6)).choices[0].finish_reason).toBe("length");
      expect(log()).toMatch(/SIGTERM: finishing 1 request in flight/);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("serve --metrics: GET /metrics needs the API key and counts the tokens the responses report", async () => {
    const { child, url, exited } = await startServe(["--metrics", "--api-key", "k", ...FAST]);
    try {
      const auth = { Authorization: "Bearer k" };
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      const body = JSON.stringify({ prompt: "Once upon a time", max_tokens: 6 });
      const done = (await (await fetch(`${url}/v1/completions`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body })).json()) as {
        usage: { prompt_tokens: number; completion_tokens: number };
      };
      const metrics = await fetch(`${url}/metrics`, { headers: auth });
      expect(metrics.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await metrics.text();
      expect(text).toMatch(new RegExp(`^llamacpp:tokens_predicted_total ${done.usage.completion_tokens}$`, "m"));
      expect(text).toMatch(new RegExp(`^llamacpp:prompt_tokens_total ${done.usage.prompt_tokens}$`, "m"));
      expect(text).toMatch(/^# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 0$/m);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
