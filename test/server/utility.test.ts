// llama-server's utility routes on `llama-napi serve`: /tokenize, /detokenize, /apply-template,
// /props and /infill, checked against what the Llama API gives directly (and against llama.cpp's
// llama-server where it is built), their bad requests, and a round of the server fuzz.
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { llamaServerPath } from "../../scripts/build-llama-server.mjs";
import { fuzzServer } from "../../scripts/fuzz-server.mjs";
import { tinyModel } from "../fixtures.js";
import { modelPath } from "../helpers.js";
import { startLlamaServer, type LlamaServer } from "../llama-server.js";
import { events, json, raw } from "./raw-http.js";

const STORIES = () => modelPath("stories260K.gguf");
const KEY = "test-key";
const AUTH = { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" };
const MESSAGES = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Tell me a story <|im_end|> about Lily." },
];

describe("utility routes on stories260K (no FIM tokens), --parallel 2", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let base: string;
  const post = async (path: string, body: unknown) => raw(base, "POST", path, { headers: AUTH, body });

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel: 2 });
    server = await startServer({ llama, port: 0, apiKey: KEY, maxTokensCap: 8, maxBodyBytes: 64 * 1024 });
    base = server.url.replace(/\/v1$/, "");
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("POST /tokenize: the Llama's tokens, by llama-server's defaults (no BOS, special tokens parsed)", async () => {
    const text = "Once upon a time</s> there was";
    expect(json(await post("/tokenize", { content: text }))).toEqual({ tokens: llama.tokenize(text, { addBos: false, special: true }) });
    expect(json(await post("/tokenize", { content: text, add_special: true, parse_special: false }))).toEqual({ tokens: llama.tokenize(text, { addBos: true, special: false }) });
    expect(json(await post("/v1/tokenize", { content: "" }))).toEqual({ tokens: [] });
    // llama-server's mixed content: strings and token ids; only the first element gets a BOS.
    const mixed = json(await post("/tokenize", { content: ["Once", 407, " a time"], add_special: true }));
    expect(mixed.tokens).toEqual([...llama.tokenize("Once"), 407, ...llama.tokenize(" a time", { addBos: false })]);
  });

  it("POST /tokenize with_pieces: { id, piece }, the piece a string when valid UTF-8, else its bytes", async () => {
    const text = "Lily é 🦙";
    const res = json(await post("/tokenize", { content: text, with_pieces: true })) as { tokens: Array<{ id: number; piece: string | number[] }> };
    const ids = llama.tokenize(text, { addBos: false, special: true });
    expect(res.tokens.map((t) => t.id)).toEqual(ids);
    for (const { id, piece } of res.tokens) {
      const bytes = Buffer.from(llama.model.tokenBytes(id, true));
      if (typeof piece === "string") expect(Buffer.from(piece, "utf8")).toEqual(bytes);
      else expect(piece).toEqual([...bytes]);
    }
    // The llama's four UTF-8 bytes are byte tokens here: arrays, which add up to the character.
    const arrays = res.tokens.filter((t) => Array.isArray(t.piece)).map((t) => t.piece as number[]);
    expect(arrays.length).toBeGreaterThanOrEqual(4);
    expect(Buffer.from(arrays.flat()).toString("utf8")).toContain("🦙");
  });

  it("POST /detokenize: the tokens' pieces, special tokens as their text, as llama-server's", async () => {
    const tokens = [1, ...llama.tokenize("Once upon a time", { addBos: false }), 2];
    const res = json(await post("/detokenize", { tokens }));
    expect(res).toEqual({ content: Buffer.concat(tokens.map((t) => llama.model.tokenBytes(t, true))).toString("utf8") });
    expect(res.content).toBe("<s> Once upon a time</s>");
    expect(llama.detokenize(tokens, { special: true })).toBe("<s> Once upon a time</s>");
    expect(json(await post("/detokenize", { tokens: [] }))).toEqual({ content: "" });
  });

  it("POST /apply-template: the prompt the chat route runs, through the same request checks", async () => {
    const res = json(await post("/apply-template", { messages: MESSAGES, temperature: 0 }));
    expect(res).toEqual({ prompt: llama.formatChat(MESSAGES).prompt });
    expect(res.prompt).toBe("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell me a story <|im_end|> about Lily.<|im_end|>\n<|im_start|>assistant\n");
    // The chat route runs exactly that prompt: its prompt_tokens are its tokens.
    const chat = json(await post("/v1/chat/completions", { messages: MESSAGES, max_tokens: 1, temperature: 0 }));
    expect((chat.usage as { prompt_tokens: number }).prompt_tokens).toBe(llama.tokenize(res.prompt as string, { special: true }).length);
    // developer is system, as in chat requests.
    const developer = json(await post("/apply-template", { messages: [{ role: "developer", content: "Be brief." }, MESSAGES[1]] }));
    expect(developer.prompt).toBe(res.prompt);
  });

  it("GET /props: the model, context, slots, template, defaults, modalities and build", async () => {
    const props = json(await raw(base, "GET", "/props", { headers: AUTH }));
    expect(props).toMatchObject({
      default_generation_settings: { n_ctx: 256, params: { temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, seed: -1 } },
      total_slots: 2,
      model_alias: "stories260K",
      model_path: STORIES(),
      modalities: { vision: false, audio: false },
      chat_template: "",
      bos_token: "<s>",
      eos_token: "</s>",
      build_info: expect.stringMatching(/^llama\.cpp [0-9a-f]{7,}/),
    });
  });

  it("POST /infill on a model without FIM tokens: 501 in OpenAI's shape", async () => {
    const res = await post("/infill", { input_prefix: "def f(", input_suffix: ")" });
    expect(res.status).toBe(501);
    expect(json(res)).toEqual({
      error: { message: "infill is not supported by this model: it lacks the FIM prefix, suffix, middle tokens", type: "not_supported_error", param: null, code: "not_supported" },
    });
    expect((await raw(base, "GET", "/health")).status).toBe(200);
  });

  it("bad bodies are 400s naming the field; auth, unknown paths and wrong methods as elsewhere", async () => {
    const cases: Array<[string, unknown, string | null]> = [
      ["/tokenize", {}, "content"],
      ["/tokenize", { content: 12 }, "content"],
      ["/tokenize", { content: ["x", 1.5] }, "content"],
      ["/tokenize", { content: ["x", 512] }, "content"],
      ["/tokenize", { content: "x", with_pieces: "yes" }, "with_pieces"],
      ["/tokenize", { content: "x", add_special: 1 }, "add_special"],
      ["/tokenize", [1, 2], null],
      ["/detokenize", {}, "tokens"],
      ["/detokenize", { tokens: "1 2" }, "tokens"],
      ["/detokenize", { tokens: [1, -1] }, "tokens"],
      ["/detokenize", { tokens: [1, 512] }, "tokens"],
      ["/detokenize", { tokens: [1, "2"] }, "tokens"],
      ["/apply-template", {}, "messages"],
      ["/apply-template", { messages: [{ content: "x" }] }, "messages[0].role"],
      ["/apply-template", { messages: MESSAGES, reasoning_format: "loud" }, "reasoning_format"],
      ["/apply-template", { messages: MESSAGES, tools: {} }, "tools"],
    ];
    for (const [path, body, param] of cases) {
      const res = await post(path, body);
      expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(json(res).error, `${path} ${JSON.stringify(body)}`).toMatchObject({ type: "invalid_request_error", param, message: expect.any(String) });
    }
    const badJson = await raw(base, "POST", "/tokenize", { headers: AUTH, body: "{" });
    expect(json(badJson).error).toMatchObject({ code: "invalid_json" });
    expect((await raw(base, "POST", "/tokenize", { body: { content: "x" } })).status).toBe(401);
    expect((await raw(base, "GET", "/props")).status).toBe(401);
    expect((await raw(base, "GET", "/tokenize", { headers: AUTH })).status).toBe(405);
    expect((await raw(base, "POST", "/props", { headers: AUTH, body: {} })).status).toBe(405);
    expect((await raw(base, "POST", "/tokenizer", { headers: AUTH, body: {} })).status).toBe(404);
  });

  it("a round of the server fuzz breaks no rule", async () => {
    const { failures, statuses } = await fuzzServer(base, { ops: 300, seed: 19, key: KEY });
    expect(failures).toEqual([]);
    expect(statuses["400"]).toBeGreaterThan(50);
  }, 120_000);
});

describe("POST /infill on a model with FIM tokens", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let base: string;
  const prefix = "def add(a, b):\n    ";
  const suffix = "\n    return total\n";

  beforeAll(async () => {
    llama = await Llama.load({ modelPath: await tinyModel("starcoder"), nCtx: 256, nThreads: 1 });
    server = await startServer({ llama, port: 0, maxTokensCap: 64 });
    base = server.url.replace(/\/v1$/, "");
  });
  afterAll(async () => {
    await server?.close(0);
    await llama?.dispose();
  });

  it("generates what the Llama's own fill-in-the-middle gives, whole and streamed (llama-server's events, no [DONE])", async () => {
    const direct = await llama.createCompletion(prefix, { suffix, maxTokens: 8, temperature: 0 });
    const whole = json(await raw(base, "POST", "/infill", { body: { input_prefix: prefix, input_suffix: suffix, n_predict: 8, temperature: 0 } }));
    expect(whole).toMatchObject({
      content: direct.choices[0]!.text,
      stop: true,
      tokens_predicted: direct.usage.completion_tokens,
      tokens_evaluated: direct.usage.prompt_tokens,
      model: "tiny-starcoder",
      finish_reason: direct.choices[0]!.finish_reason,
    });
    const streamed = await raw(base, "POST", "/infill", { body: { input_prefix: prefix, input_suffix: suffix, max_tokens: 8, temperature: 0, stream: true } });
    const list = events(streamed.body) as Array<{ content: string; stop: boolean; tokens_predicted?: number }>;
    expect(list.at(-1)).toMatchObject({ stop: true, content: "", tokens_predicted: 8 });
    expect(list.slice(0, -1).every((e) => !e.stop)).toBe(true);
    expect(list.map((e) => e.content).join("")).toBe(whole.content);
    expect(streamed.body).not.toContain("[DONE]");
  });

  it("lays prompt and input_extra out as llama-server: extra chunks first, the prompt after the prefix", async () => {
    const { fimPre, fimSuf, fimMid } = llama.model.info;
    const tok = (text: string) => llama.tokenize(text, { addBos: false });
    const body = { input_prefix: prefix, input_suffix: suffix, prompt: "total = ", input_extra: [{ filename: "util.py", text: "import os\n" }], n_predict: 4, temperature: 0 };
    // This vocabulary has no FIM repo and file-separator tokens: chunks come after llama-server's snippet marker.
    const layout = [...tok("\n\n--- snippet ---\n\n"), ...tok("import os\n"), fimPre, ...tok(prefix), ...tok("total = "), fimSuf, ...tok(suffix), fimMid];
    const direct = await llama.createCompletion(layout, { maxTokens: 4, temperature: 0 });
    const res = json(await raw(base, "POST", "/infill", { body }));
    expect(res).toMatchObject({ content: direct.choices[0]!.text, tokens_evaluated: layout.length });
  });

  it("bad infill requests are 400s naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ input_suffix: "" }, "input_prefix"],
      [{ input_prefix: "" }, "input_suffix"],
      [{ input_prefix: 1, input_suffix: "" }, "input_prefix"],
      [{ input_prefix: "", input_suffix: "", input_extra: "x" }, "input_extra"],
      [{ input_prefix: "", input_suffix: "", input_extra: [{ filename: "a" }] }, "input_extra"],
      [{ input_prefix: "", input_suffix: "", input_extra: [{ text: "a", filename: 3 }] }, "input_extra"],
      [{ input_prefix: "", input_suffix: "", prompt: ["x"] }, "prompt"],
      [{ input_prefix: "", input_suffix: "", n_predict: 65 }, "n_predict"],
      [{ input_prefix: "", input_suffix: "", n_predict: "4" }, "n_predict"],
      [{ input_prefix: "", input_suffix: "", temperature: -1 }, "temperature"],
      [{ input_prefix: "", input_suffix: "", stream: "yes" }, "stream"],
    ];
    for (const [body, param] of cases) {
      const res = await raw(base, "POST", "/infill", { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(json(res).error, JSON.stringify(body)).toMatchObject({ type: "invalid_request_error", param });
    }
    // n_predict -1 is llama-server's "no limit": the server's cap.
    expect(json(await raw(base, "POST", "/infill", { body: { input_prefix: prefix, input_suffix: suffix, n_predict: -1, temperature: 0, logit_bias: { "0": -100 } } })).tokens_predicted).toBe(64);
  });
});

describe.skipIf(!existsSync(llamaServerPath()))("the same answers as llama.cpp's llama-server", () => {
  let reference: LlamaServer;
  let llama: Llama;
  let server: OpenAIServer;
  let base: string;

  beforeAll(async () => {
    reference = await startLlamaServer(STORIES(), ["--jinja"]);
    llama = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    server = await startServer({ llama, port: 0 });
    base = server.url.replace(/\/v1$/, "");
  }, 120_000);
  afterAll(async () => {
    await reference?.stop();
    await server?.close(0);
    await llama?.dispose();
  });

  it("/tokenize (with and without pieces), /detokenize and /apply-template", async () => {
    const bodies: Array<[string, unknown]> = [
      ["/tokenize", { content: "Once upon a time </s> Lily é 🦙" }],
      ["/tokenize", { content: "Once upon a time </s> Lily é 🦙", with_pieces: true }],
      ["/tokenize", { content: "Once upon a time </s>", add_special: true, parse_special: false }],
      ["/tokenize", { content: ["Once", 407, " a time"], add_special: true }],
      ["/detokenize", { tokens: [1, 403, 407, 261, 378, 2, 13] }],
      ["/apply-template", { messages: MESSAGES }],
    ];
    for (const [path, body] of bodies) {
      const ours = json(await raw(base, "POST", path, { body }));
      expect(ours, `${path} ${JSON.stringify(body)}`).toEqual(await reference.post(path, body));
    }
  });
});
