// The completion API in llama-cpp-python's shape, on stories260K, the Llama 2 vocab model and
// tiny generated models that carry real tokenizers and chat templates.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Llama, LlamaError, type CompletionChunk } from "../../lib/index.js";
import { tinyModel } from "../fixtures.js";
import { drain, modelPath, sleep } from "../helpers.js";
import { greedyReferences } from "../llama-cpp-tools.js";

const STORIES = () => modelPath("stories260K.gguf");

describe("createCompletion on stories260K", () => {
  let llm: Llama;
  beforeAll(async () => {
    llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, verbose: false });
  });
  afterAll(() => llm.dispose());

  it("returns llama-cpp-python's / OpenAI's completion object", async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await llm.createCompletion("Once upon a time", { maxTokens: 12, temperature: 0.7, topP: 0.9, topK: 40, repeatPenalty: 1.1, seed: 1 });
    expect(Object.keys(res).sort()).toEqual(["choices", "created", "id", "model", "object", "usage"]);
    expect(res.id).toMatch(/^cmpl-/);
    expect(res.object).toBe("text_completion");
    expect(res.created).toBeGreaterThanOrEqual(before);
    expect(res.model).toBe(STORIES());
    expect(res.choices).toHaveLength(1);
    expect(Object.keys(res.choices[0]!).sort()).toEqual(["finish_reason", "index", "logprobs", "text"]);
    expect(res.choices[0]!.index).toBe(0);
    expect(res.choices[0]!.logprobs).toBeNull();
    expect(res.choices[0]!.finish_reason).toBe("length");
    expect(res.usage).toEqual({ prompt_tokens: 5, completion_tokens: 12, total_tokens: 17 });
  });

  it("temperature 0 gives llama.cpp's greedy output (llama-completion's, run here)", async () => {
    for (const golden of greedyReferences().filter((g) => g.model === "stories260K.gguf")) {
      const res = await llm.createCompletion(golden.prompt, { maxTokens: golden.nPredict, temperature: 0 });
      // llama-completion prints the prompt (SentencePiece's leading space) and the continuation.
      expect(` ${golden.prompt}${res.choices[0]!.text}`).toBe(golden.printed.toString("utf8"));
    }
  });

  it("the same seed and options give the same text; prompt + text reads as one text", async () => {
    const options = { maxTokens: 40, temperature: 1, seed: 1234 };
    const a = await llm.createCompletion("Lily went", options);
    const b = await llm.createCompletion("Lily went", options);
    const c = await llm.createCompletion("Lily went", { ...options, seed: 99 });
    expect(a.choices[0]!.text).toBe(b.choices[0]!.text);
    expect(c.choices[0]!.text).not.toBe(a.choices[0]!.text);
    // The first piece keeps its leading space: the text continues the prompt.
    expect(a.choices[0]!.text.startsWith(" ")).toBe(true);
    const whole = llm.tokenize("Lily went" + a.choices[0]!.text);
    expect(llm.detokenize(whole.slice(1))).toBe("Lily went" + a.choices[0]!.text);
  });

  it("accepts a prompt of token ids and echoes the prompt on request", async () => {
    const tokens = llm.tokenize("Once upon a time");
    const res = await llm.createCompletion(tokens, { maxTokens: 8, temperature: 0, echo: true });
    // Token prompts echo as llama.cpp detokenizes them (SentencePiece keeps its leading space).
    expect(res.choices[0]!.text).toBe(llm.model.detokenize(tokens, { removeSpecial: true }) + ", there was a little girl");
    expect(res.usage.prompt_tokens).toBe(tokens.length);
  });

  it("maxTokens 0 or null generates until end of generation or a full context", async () => {
    for (const maxTokens of [0, null]) {
      const res = await llm.createCompletion("Once upon a time", { maxTokens, temperature: 0 });
      expect(res.usage.completion_tokens).toBeGreaterThan(16);
      expect(["stop", "length"]).toContain(res.choices[0]!.finish_reason);
      if (res.choices[0]!.finish_reason === "length") expect(res.usage.total_tokens).toBe(llm.nCtx);
    }
  });

  it("stop strings match across token boundaries and never reach the caller", async () => {
    const free = (await llm.createCompletion("Once upon a time", { maxTokens: 20, temperature: 0 })).choices[0]!.text;
    expect(free).toContain(" little girl");
    // "le gir" spans the tokens " little", " g", "ir".
    const res = await llm.createCompletion("Once upon a time", { maxTokens: 20, temperature: 0, stop: ["le gir", "nothing"] });
    expect(res.choices[0]!.text).toBe(free.slice(0, free.indexOf("le gir")));
    expect(res.choices[0]!.finish_reason).toBe("stop");
    const chunks = await drain(llm.createCompletion("Once upon a time", { maxTokens: 20, temperature: 0, stop: "le gir", stream: true }));
    const streamed = chunks.map((c) => c.choices[0]!.text).join("");
    expect(streamed).toBe(res.choices[0]!.text);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("stop");
    expect(chunks.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
  });

  it("streams OpenAI completion chunks whose text joins to the whole completion", async () => {
    const chunks: CompletionChunk[] = await drain(llm.createCompletion("The dog", { maxTokens: 24, temperature: 0, stream: true }));
    const whole = await llm.createCompletion("The dog", { maxTokens: 24, temperature: 0 });
    expect(chunks.length).toBeGreaterThan(10);
    for (const c of chunks) {
      expect(c.object).toBe("text_completion");
      expect(c.id).toBe(chunks[0]!.id);
    }
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(whole.choices[0]!.text);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");
  });

  it("breaking out of a stream stops generation within one token and leaves the Llama usable", async () => {
    const context = llm.context!;
    const before = llm.stats.tokens;
    let seen = 0;
    for await (const _chunk of llm.createCompletion("Once upon a time", { maxTokens: 200, temperature: 0, stream: true })) {
      if (++seen === 5) break;
    }
    await new Promise((done) => setTimeout(done, 100));
    // The prompt (5) and the tokens behind the 5 chunks, plus at most one more step.
    expect(llm.stats.tokens - before).toBeLessThanOrEqual(5 + 5 + 1);
    expect(llm.active).toBe(0);
    expect(context.disposed).toBe(false);
    const after = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
    expect(after.choices[0]!.text).toBe(", there was a");
  });

  it("a stream is pulled: a slow reader holds generation back, and breaking out of it wastes at most one token", async () => {
    const text = "Tom and Sam played";
    // The slot's cache shares the BOS with this prompt: the rest is decoded.
    const promptDecoded = llm.tokenize(text).length - 1;
    const before = llm.stats.tokens;
    let seen = 0;
    const ahead: number[] = [];
    for await (const _chunk of llm.createCompletion(text, { maxTokens: 200, temperature: 0, stream: true })) {
      seen++;
      // A token decodes in about a millisecond: without the pull, generation would run far ahead.
      await sleep(20);
      ahead.push(llm.stats.tokens - before - promptDecoded - seen);
      if (seen === 6) break;
    }
    await sleep(100);
    expect(Math.max(...ahead)).toBeLessThanOrEqual(1);
    expect(llm.stats.tokens - before).toBeLessThanOrEqual(promptDecoded + seen + 1);
    expect(llm.active).toBe(0);
    const after = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
    expect(after.choices[0]!.text).toBe(", there was a");
  });

  it("a stream starts when it is first read: one never read takes no sequence from the others", async () => {
    const before = llm.stats.tokens;
    const unread = llm.createCompletion("Once upon a time", { maxTokens: 8, temperature: 0, stream: true });
    // nParallel 1: this one would queue behind the stream if that had started.
    const res = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
    expect(res.choices[0]!.text).toBe(", there was a");
    const used = llm.stats.tokens - before;
    await sleep(20);
    expect(llm.stats.tokens - before).toBe(used);
    const chunks = await drain(unread);
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(", there was a little girl");
    // One never read and dropped: return() without a read frees it.
    const dropped = llm.createChatCompletion({ messages: [{ role: "user", content: "Hi" }], stream: true });
    await dropped.return!();
    expect(llm.active + llm.queued).toBe(0);
  });

  it("reuses a cached prompt prefix, but not one cleared behind its back through the public context", async () => {
    const prompt = "Lily and Tom went to the park";
    const promptTokens = llm.tokenize(prompt).length;
    const first = await llm.createCompletion(prompt, { maxTokens: 8, temperature: 0 });
    let before = llm.stats.tokens;
    const cached = await llm.createCompletion(prompt, { maxTokens: 8, temperature: 0 });
    // The prompt but its last token came from the cache.
    expect(llm.stats.tokens - before).toBe(1 + 7);
    expect(cached.choices[0]!.text).toBe(first.choices[0]!.text);
    llm.context!.clear();
    before = llm.stats.tokens;
    const cleared = await llm.createCompletion(prompt, { maxTokens: 8, temperature: 0 });
    expect(llm.stats.tokens - before).toBe(promptTokens + 7);
    expect(cleared.choices[0]!.text).toBe(first.choices[0]!.text);
  });

  it("a completion settles with its context idle, even when a stop string ends it while generating ahead", async () => {
    const res = await llm.createCompletion("Once upon a time", { maxTokens: 50, temperature: 0, stop: [" was"] });
    expect(res.choices[0]!.text).toBe(", there");
    expect(res.choices[0]!.finish_reason).toBe("stop");
    // No operation is in flight: the low-level context answers at once instead of BUSY.
    expect(llm.context!.perf().evalTokens).toBeGreaterThan(0);
  });

  it("an AbortSignal stops a completion, streamed or not, and the Llama stays usable", async () => {
    const controller = new AbortController();
    const received: string[] = [];
    const error = await (async () => {
      for await (const chunk of llm.createCompletion("Once upon a time", { maxTokens: 200, temperature: 0, stream: true, signal: controller.signal })) {
        received.push(chunk.choices[0]!.text);
        if (received.length === 3) controller.abort();
      }
    })().then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LlamaError);
    expect((error as LlamaError).code).toBe("ABORTED");
    expect(received.length).toBeLessThanOrEqual(4);
    await expect(llm.createCompletion("Hi", { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: "ABORTED" });
    // Mid-generation, not streamed: aborted once its first tokens are out.
    const midway = new AbortController();
    const before = llm.stats.tokens;
    const aborted = llm.createCompletion("Once upon a time", { maxTokens: 200, temperature: 0, signal: midway.signal });
    while (llm.stats.tokens - before < 3) await sleep(0);
    midway.abort();
    await expect(aborted).rejects.toMatchObject({ code: "ABORTED" });
    expect(llm.stats.tokens - before).toBeLessThan(50);
    const res = await llm.createCompletion("Once upon a time", { maxTokens: 4, temperature: 0 });
    expect(res.choices[0]!.text).toBe(", there was a");
  });

  it("reports log-probabilities of each token with alternatives", async () => {
    const res = await llm.createCompletion("Once upon a time", { maxTokens: 6, temperature: 0, logprobs: 3 });
    const lp = res.choices[0]!.logprobs!;
    expect(lp.tokens).toHaveLength(6);
    expect(lp.tokens.join("")).toBe(res.choices[0]!.text);
    expect(lp.text_offset[0]).toBe(0);
    lp.token_logprobs.forEach((v, i) => {
      expect(v).toBeLessThanOrEqual(0);
      const top = lp.top_logprobs[i]!;
      expect(Object.keys(top).length).toBeGreaterThanOrEqual(1);
      // Greedy: the chosen token is the most likely one.
      expect(Math.max(...Object.values(top))).toBeCloseTo(v!, 4);
    });
  });

  it("log-probabilities cover the returned text only: nothing of a stop string, streamed or not", async () => {
    // Greedy: "Once upon a time, there was a little girl named Lily." The stop " gir" spans tokens.
    for (const stop of [" gir", "le gir", "."]) {
      const options = { maxTokens: 40, temperature: 0, logprobs: 2, stop };
      const res = await llm.createCompletion("Once upon a time", options);
      const text = res.choices[0]!.text;
      const lp = res.choices[0]!.logprobs!;
      expect(res.choices[0]!.finish_reason).toBe("stop");
      expect(lp.tokens.join("")).toBe(text);
      lp.tokens.forEach((piece, i) => expect(text.slice(lp.text_offset[i], lp.text_offset[i]! + piece.length)).toBe(piece));
      expect(lp.tokens.some((piece) => piece.includes(stop.trim()))).toBe(false);
      const chunks = await drain(llm.createCompletion("Once upon a time", { ...options, stream: true }));
      expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(text);
      const streamed = chunks.flatMap((c) => c.choices[0]!.logprobs?.tokens ?? []);
      expect(streamed).toEqual(lp.tokens);
      expect(chunks.flatMap((c) => c.choices[0]!.logprobs?.token_logprobs ?? [])).toEqual(lp.token_logprobs);
      expect(chunks.flatMap((c) => c.choices[0]!.logprobs?.text_offset ?? [])).toEqual(lp.text_offset);
    }
  });

  it("a grammar and logit bias shape the output", async () => {
    const res = await llm.createCompletion("Once upon a time", { maxTokens: 10, temperature: 0, grammar: 'root ::= " yes" | " no"' });
    expect([" yes", " no"]).toContain(res.choices[0]!.text);
    expect(res.choices[0]!.finish_reason).toBe("stop");
    const comma = llm.tokenize(",", { addBos: false }).at(-1)!;
    const biased = await llm.createCompletion("Once upon a time", { maxTokens: 3, temperature: 0, logitBias: { [comma]: -Infinity } });
    expect(biased.choices[0]!.text.startsWith(",")).toBe(false);
    const mirostat = await llm.createCompletion("Once upon a time", { maxTokens: 8, mirostat: { mode: 2, tau: 5, eta: 0.1 }, seed: 3 });
    expect(mirostat.usage.completion_tokens).toBeGreaterThan(0);
  });

  it("a prompt longer than the context is CONTEXT_FULL unless truncation is asked for", async () => {
    const long = "Once upon a time there was a little girl named Lily. ".repeat(40);
    await expect(llm.createCompletion(long, { maxTokens: 4 })).rejects.toMatchObject({ code: "CONTEXT_FULL" });
    const res = await llm.createCompletion(long, { maxTokens: 4, truncate: true, temperature: 0 });
    expect(res.usage.prompt_tokens).toBeLessThanOrEqual(llm.nCtx - 4);
    expect(res.usage.completion_tokens).toBe(4);
  });

  it("bad option values are TypeError/RangeError naming the option", async () => {
    await expect(llm.createCompletion("x", { temperature: -1 })).rejects.toThrow(/options\.temperature must be >= 0/);
    await expect(llm.createCompletion("x", { maxTokens: 1.5 })).rejects.toThrow(/options\.maxTokens must be an integer/);
    await expect(llm.createCompletion("x", { topP: Number.NaN })).rejects.toThrow(/options\.topP must be a finite number/);
    await expect(llm.createCompletion("x", { stop: [1 as unknown as string] })).rejects.toThrow(/options\.stop\[0\] must be a string/);
    await expect(llm.createCompletion(42 as unknown as string)).rejects.toThrow(/prompt must be a string/);
    expect(() => llm.createCompletion("x", { stream: true, seed: -5 })).toThrow(/options\.seed must be >= 0/);
    await expect(Llama.load({ modelPath: STORIES(), nCtx: "big" as unknown as number })).rejects.toThrow(/options\.nCtx must be an integer/);
    await expect(Llama.load({ modelPath: STORIES(), nParallel: 0 })).rejects.toThrow(/options\.nParallel must be >= 1/);
    await expect(Llama.load({} as { modelPath: string })).rejects.toThrow(/modelPath is required/);
    await expect(Llama.load({ modelPath: STORIES(), nCtx: 1 << 20, nParallel: 32 })).rejects.toThrow(
      /options\.nCtx × options\.nParallel must be at most 16777216, got 1048576 × 32/,
    );
  });

  it("conflicting or malformed chat options are TypeError/RangeError naming them", async () => {
    const messages = [{ role: "user", content: "Hi" }];
    const chat = (extra: object) => llm.createChatCompletion({ messages, maxTokens: 2, ...extra });
    await expect(chat({ responseFormat: { type: "json_schema" } })).rejects.toThrow(/options\.responseFormat\.json_schema must be an object/);
    await expect(chat({ responseFormat: { type: "json_schema", json_schema: { schema: "x" } } })).rejects.toThrow(
      /options\.responseFormat\.json_schema\.schema must be an object/,
    );
    await expect(chat({ responseFormat: { type: "json_object", schema: 3 } })).rejects.toThrow(/options\.responseFormat\.schema must be an object/);
    await expect(chat({ responseFormat: { type: "xml" } })).rejects.toThrow(/options\.responseFormat\.type must be "text", "json_object" or "json_schema"/);
    await expect(chat({ responseFormat: { type: "json_object" }, grammar: 'root ::= "a"' })).rejects.toThrow(
      /options\.grammar and options\.responseFormat both constrain the output/,
    );
    await expect(chat({ topLogprobs: 2 })).rejects.toThrow(/options\.topLogprobs needs options\.logprobs: true/);
    // Text output with a grammar stays allowed.
    const ok = await chat({ responseFormat: { type: "text" }, grammar: 'root ::= "a"' });
    expect(ok.choices[0]!.message.content).toBe("a");
  });

  it("chat log-probabilities cover the message only: nothing of the end-of-turn text", async () => {
    // stories260K has no template: ChatML, whose end of turn "<|im_end|>" is plain text here.
    const options = { messages: [{ role: "user", content: "Hi" }], temperature: 0, logprobs: true, topLogprobs: 2, grammar: 'root ::= "Hello world<|im_end|>"' };
    const res = await llm.createChatCompletion(options);
    expect(res.choices[0]!.message.content).toBe("Hello world");
    const content = res.choices[0]!.logprobs!.content;
    expect(content.map((c) => c.token).join("")).toBe("Hello world");
    for (const c of content) {
      expect(Buffer.from(c.bytes).toString("utf8")).toBe(c.token);
      expect(c.top_logprobs.length).toBeGreaterThanOrEqual(1);
    }
    const chunks = await drain(llm.createChatCompletion({ ...options, stream: true }));
    const streamed = chunks.flatMap((c) => c.choices[0]!.logprobs?.content ?? []);
    expect(streamed.map((c) => c.token)).toEqual(content.map((c) => c.token));
    // The prompt's KV cache is reused the second time: the same logits to float rounding.
    streamed.forEach((c, i) => expect(c.logprob).toBeCloseTo(content[i]!.logprob, 4));
  });

  it("suffix needs FIM tokens: a clear error on a model without them", async () => {
    await expect(llm.createCompletion("def f(", { suffix: "return x" })).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await expect(llm.createCompletion([1, 403], { suffix: "return x" })).rejects.toMatchObject({ code: "UNSUPPORTED" });
  });

  it("has tokenize, detokenize, context size and metadata", () => {
    expect(llm.tokenize("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
    expect(llm.tokenize("Once upon a time", { addBos: false })).toEqual([403, 407, 261, 378]);
    expect(llm.detokenize([403, 407, 261, 378])).toBe("Once upon a time");
    expect(llm.nCtx).toBe(256);
    expect(llm.metadata["general.architecture"]).toBe("llama");
  });
});

describe("UTF-8 in streams (Llama 2 vocabulary: emoji and CJK arrive as byte tokens)", () => {
  it("no chunk holds a broken UTF-8 sequence", async () => {
    const llm = await Llama.load({ modelPath: modelPath("llama-2-tiny-random.gguf"), nCtx: 256, nThreads: 1 });
    try {
      const target = " 日本語 🦙🦙 ok";
      const grammar = `root ::= ${JSON.stringify(target)}`;
      const chunks = await drain(llm.createCompletion("Hello", { maxTokens: 64, temperature: 0, grammar, stream: true }));
      const texts = chunks.map((c) => c.choices[0]!.text);
      expect(texts.join("")).toBe(target);
      for (const text of texts) {
        expect(text).not.toContain("\uFFFD");
        expect(Buffer.from(text, "utf8").toString("utf8")).toBe(text);
      }
      const whole = await llm.createCompletion("Hello", { maxTokens: 64, temperature: 0, grammar });
      expect(whole.choices[0]!.text).toBe(target);
      // The emoji came as byte tokens (four per emoji): more tokens than text chunks.
      expect(whole.usage.completion_tokens).toBeGreaterThanOrEqual(chunks.length - 1 + 6);
    } finally {
      await llm.dispose();
    }
  });
});

describe("chat", () => {
  it("formats with the model's GGUF template (Qwen2's ChatML) and streams chat.completion.chunk", async () => {
    const llm = await Llama.load({ modelPath: await tinyModel("qwen2"), nCtx: 256, nThreads: 1 });
    try {
      const messages = [
        { role: "system", content: "You are terse." },
        { role: "user", content: "Hi" },
      ];
      expect(llm.formatChat(messages).prompt).toBe(
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
      );
      const res = await llm.createChatCompletion({ messages, maxTokens: 6, temperature: 0 });
      expect(res.object).toBe("chat.completion");
      expect(res.id).toMatch(/^chatcmpl-/);
      expect(res.choices[0]!.message.role).toBe("assistant");
      expect(typeof res.choices[0]!.message.content).toBe("string");
      const chunks = await drain(llm.createChatCompletion({ messages, maxTokens: 6, temperature: 0, stream: true }));
      expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
      expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
      expect(chunks.map((c) => c.choices[0]!.delta.content ?? "").join("")).toBe(res.choices[0]!.message.content);
      expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe(res.choices[0]!.finish_reason);

      // End of turn: <|im_end|> is an end-of-generation token; made certain here by a bias.
      const imEnd = llm.tokenize("<|im_end|>", { addBos: false, special: true });
      expect(imEnd).toHaveLength(1);
      const ended = await llm.createChatCompletion({ messages, maxTokens: 20, temperature: 0, logitBias: { [imEnd[0]!]: 100 } });
      expect(ended.choices[0]!.finish_reason).toBe("stop");
      expect(ended.choices[0]!.message.content).toBe("");
    } finally {
      await llm.dispose();
    }
  });

  it("formats Llama 3 chats (the template from the GGUF, or by name), Phi-3 chats, and an explicit template overrides the model's", async () => {
    const fromGguf = await Llama.load({ modelPath: await tinyModel("llama3-chat"), nCtx: 256, nThreads: 1 });
    const byName = await Llama.load({ modelPath: await tinyModel("llama-bpe"), nCtx: 256, nThreads: 1, chatTemplate: "llama3" });
    try {
      const messages = [{ role: "user", content: "Hi" }];
      for (const llama3 of [fromGguf, byName]) {
        const { prompt, stops } = llama3.formatChat(messages);
        expect(prompt).toBe("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
        expect(stops).toEqual(["<|eot_id|>"]);
        const res = await llama3.createChatCompletion({ messages, maxTokens: 4, temperature: 0 });
        // The template's text starts with no BOS: the tokenizer adds it.
        expect(res.usage.prompt_tokens).toBe(llama3.tokenize(prompt, { special: true }).length);
      }
      // End of turn: <|eot_id|> ends generation (made certain by a bias) and never shows.
      const eot = fromGguf.tokenize("<|eot_id|>", { addBos: false, special: true });
      expect(eot).toHaveLength(1);
      const ended = await fromGguf.createChatCompletion({ messages, maxTokens: 20, temperature: 0, logitBias: { [eot[0]!]: 100 } });
      expect(ended.choices[0]!.finish_reason).toBe("stop");
      expect(ended.choices[0]!.message.content).toBe("");
      expect(ended.usage.completion_tokens).toBe(0);
    } finally {
      await fromGguf.dispose();
      await byName.dispose();
    }
    const phi3 = await Llama.load({ modelPath: await tinyModel("phi-3"), nCtx: 256, nThreads: 1 });
    try {
      expect(phi3.formatChat([{ role: "user", content: "Hi" }]).prompt).toBe("<|user|>\nHi<|end|>\n<|assistant|>\n");
    } finally {
      await phi3.dispose();
    }
    const overridden = await Llama.load({ modelPath: await tinyModel("qwen2"), nCtx: 256, nThreads: 1, chatTemplate: "llama2" });
    try {
      expect(overridden.formatChat([{ role: "user", content: "Hi" }]).prompt).toContain("[INST]");
    } finally {
      await overridden.dispose();
    }
  });

  it("falls back to ChatML with one log line for a model without a template", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    try {
      const messages = [{ role: "user", content: "Tell me a story" }];
      expect(llm.formatChat(messages).prompt).toBe("<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n");
      await llm.createChatCompletion({ messages, maxTokens: 4 });
      await llm.createChatCompletion({ messages, maxTokens: 4 });
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/no chat template; using ChatML/);
    } finally {
      warn.mockRestore();
      await llm.dispose();
    }
  });

  it("responseFormat json_object and a JSON schema give output that parses", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 512, nThreads: 1 });
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const messages = [{ role: "user", content: "Describe a cat as JSON" }];
      const schema = {
        type: "object",
        properties: {
          name: { type: "string", maxLength: 12 },
          age: { type: "integer" },
          mood: { enum: ["happy", "sad"] },
          toys: { type: "array", items: { type: "string", maxLength: 8 }, maxItems: 2 },
        },
        required: ["name", "age", "mood"],
      };
      const res = await llm.createChatCompletion({
        messages,
        temperature: 0,
        maxTokens: 120,
        responseFormat: { type: "json_schema", json_schema: { name: "cat", schema } },
      });
      const value = JSON.parse(res.choices[0]!.message.content!) as Record<string, unknown>;
      expect(typeof value.name).toBe("string");
      expect(Number.isInteger(value.age)).toBe(true);
      expect(["happy", "sad"]).toContain(value.mood);

      const obj = await llm.createChatCompletion({ messages, temperature: 0, maxTokens: 200, responseFormat: { type: "json_object", schema } });
      expect(JSON.parse(obj.choices[0]!.message.content!)).toMatchObject({ mood: expect.any(String) });
    } finally {
      warn.mockRestore();
      await llm.dispose();
    }
  });
});

describe("embeddings", () => {
  it("createEmbedding returns OpenAI's list with usage; embed() plain and normalized vectors", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 128, nThreads: 1, embedding: true });
    try {
      const list = await llm.createEmbedding(["a happy dog", "a sad cat"]);
      expect(list.object).toBe("list");
      expect(list.data).toHaveLength(2);
      expect(list.data[1]!).toMatchObject({ object: "embedding", index: 1 });
      expect(list.data[0]!.embedding).toHaveLength(64);
      expect(list.usage.prompt_tokens).toBe(llm.tokenize("a happy dog").length + llm.tokenize("a sad cat").length);
      const [plain] = await llm.embed("a happy dog");
      expect(Array.from(plain!)).toEqual(list.data[0]!.embedding.map((v) => Math.fround(v)));
      const [unit] = await llm.embed("a happy dog", { normalize: true });
      expect(Math.hypot(...unit!)).toBeCloseTo(1, 5);
      const single = await llm.createEmbedding("hello");
      expect(single.data).toHaveLength(1);
    } finally {
      await llm.dispose();
    }
  });
});

describe("concurrency", () => {
  const prompts = ["Once upon a time", "Lily and Tom", "The little dog", "One day, a girl"];

  it("with nParallel 4, four requests run as sequences of one context, decoded together, uncorrupted", async () => {
    const sequential = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    const expected: string[] = [];
    for (const p of prompts) expected.push((await sequential.createCompletion(p, { maxTokens: 32, temperature: 0 })).choices[0]!.text);
    await sequential.dispose();

    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel: 4 });
    try {
      const results = await Promise.all(prompts.map((p) => llm.createCompletion(p, { maxTokens: 32, temperature: 0 })));
      expect(results.map((r) => r.choices[0]!.text)).toEqual(expected);
      expect(llm.stats.maxSequencesPerBatch).toBe(4);
      expect(llm.stats.batches).toBeLessThan(4 * 33);
      // Streams interleave too, each with its own text, and share the batches.
      const batchesBefore = llm.stats.batches;
      const streams = await Promise.all(
        prompts.map(async (p) => (await drain(llm.createCompletion(p, { maxTokens: 32, temperature: 0, stream: true }))).map((c) => c.choices[0]!.text).join("")),
      );
      expect(streams).toEqual(expected);
      expect(llm.stats.batches - batchesBefore).toBeLessThan(32 + 8);
    } finally {
      await llm.dispose();
    }
  });

  it("with nParallel 2, a stream whose reader is slow waits alone: the other request goes on", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel: 2 });
    try {
      const expected = (await llm.createChatCompletion({ messages: [{ role: "user", content: "Hi" }], maxTokens: 24, temperature: 0 })).choices[0]!.message.content;
      let read = 0;
      let readWhenOtherDone = -1;
      const slow = (async () => {
        let text = "";
        for await (const chunk of llm.createChatCompletion({ messages: [{ role: "user", content: "Hi" }], maxTokens: 24, temperature: 0, stream: true })) {
          text += chunk.choices[0]!.delta.content ?? "";
          read++;
          await sleep(30);
        }
        return text;
      })();
      const other = await llm.createCompletion("Lily and Tom", { maxTokens: 32, temperature: 0 });
      readWhenOtherDone = read;
      expect(other.choices[0]!.finish_reason).toBe("length");
      // 32 tokens take well under a reader's 30 ms per chunk.
      expect(readWhenOtherDone).toBeLessThan(8);
      expect(await slow).toBe(expected);
    } finally {
      await llm.dispose();
    }
  });

  it("with nParallel 1, concurrent requests queue and finish in order", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    try {
      const order: number[] = [];
      const runs = prompts.map((p, i) => llm.createCompletion(p, { maxTokens: 16, temperature: 0 }).then((r) => (order.push(i), r)));
      expect(llm.queued).toBe(3);
      await Promise.all(runs);
      expect(order).toEqual([0, 1, 2, 3]);
      expect(llm.stats.maxSequencesPerBatch).toBe(1);
    } finally {
      await llm.dispose();
    }
  });

  it("dispose waits for work in flight; later calls are DISPOSED", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    const running = llm.createCompletion("Once upon a time", { maxTokens: 100, temperature: 0 });
    const disposing = llm.dispose();
    await Promise.allSettled([running]);
    await disposing;
    await expect(llm.createCompletion("x")).rejects.toMatchObject({ code: "DISPOSED" });
  });

  it("a stream waiting for its reader when the Llama is disposed ends DISPOSED when read on", async () => {
    // It crashed the process: the scheduler went on to generate on the disposed context.
    for (const nParallel of [1, 2]) {
      const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1, nParallel });
      const stream = llm.createCompletion("Once upon a time", { maxTokens: 20, temperature: 0, stream: true });
      expect((await stream.next()).value!.choices[0]!.text).toBe(",");
      await sleep(20);
      await llm.dispose();
      await expect(stream.next()).rejects.toMatchObject({ code: "DISPOSED" });
      await expect(stream.next()).resolves.toEqual({ value: undefined, done: true });
    }
  }, 30_000);
});

describe("queue", () => {
  it("a request aborted while queued leaves the queue at once", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), nCtx: 256, nThreads: 1 });
    try {
      const first = llm.createCompletion("Once upon a time", { maxTokens: 64, temperature: 0 });
      const controller = new AbortController();
      const second = llm.createCompletion("Lily", { maxTokens: 8, signal: controller.signal });
      expect(llm.queued).toBe(1);
      controller.abort();
      await expect(second).rejects.toMatchObject({ code: "ABORTED" });
      expect(llm.queued).toBe(0);
      expect(llm.active).toBe(1);
      await first;
    } finally {
      await llm.dispose();
    }
  });
});

describe("fill in the middle", () => {
  it("a token prompt gets the same FIM layout as a string prompt", async () => {
    const llm = await Llama.load({ modelPath: await tinyModel("starcoder"), nCtx: 256, nThreads: 1 });
    try {
      const { fimPre, fimSuf, fimMid } = llm.model.info;
      const options = { suffix: "\n    return total\n", maxTokens: 8, temperature: 0 };
      const fromText = await llm.createCompletion("def add(a, b):\n", options);
      const fromTokens = await llm.createCompletion(llm.tokenize("def add(a, b):\n", { addBos: false }), options);
      const expectedLength = [fimPre, ...llm.tokenize("def add(a, b):\n", { addBos: false }), fimSuf, ...llm.tokenize(options.suffix, { addBos: false }), fimMid].length;
      expect(fromText.usage.prompt_tokens).toBe(expectedLength + (llm.model.info.addBos ? 1 : 0));
      expect(fromTokens.usage.prompt_tokens).toBe(fromText.usage.prompt_tokens);
      expect(fromTokens.choices[0]!.text).toBe(fromText.choices[0]!.text);
    } finally {
      await llm.dispose();
    }
  });
});

describe("Llama.load", () => {
  it("a vocabOnly Llama tokenizes, and refuses to generate with UNSUPPORTED", async () => {
    const llm = await Llama.load({ modelPath: STORIES(), vocabOnly: true });
    try {
      expect(llm.tokenize("Once upon a time")).toEqual([1, 403, 407, 261, 378]);
      expect(llm.nCtx).toBe(0);
      await expect(llm.createCompletion("Once", { maxTokens: 2 })).rejects.toMatchObject({ code: "UNSUPPORTED" });
      await expect(llm.createCompletion("Once", { maxTokens: 2, truncate: true })).rejects.toMatchObject({ code: "UNSUPPORTED" });
      expect(() => llm.createCompletion("Once", { stream: true })).toThrow(/vocabOnly Llama cannot generate/);
      await expect(llm.createChatCompletion({ messages: [{ role: "user", content: "Hi" }] })).rejects.toMatchObject({ code: "UNSUPPORTED" });
      await expect(llm.embed("Once")).rejects.toMatchObject({ code: "UNSUPPORTED" });
    } finally {
      await llm.dispose();
    }
  });

  it("verbose sends llama.cpp's log to stderr while that Llama lives, and only then", async () => {
    const write = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const loud = await Llama.load({ modelPath: STORIES(), nCtx: 64, nThreads: 1, verbose: true });
      expect(write.mock.calls.some(([text]) => String(text).includes("llama_model_loader"))).toBe(true);
      await loud.dispose();
      // Lines logged while it lived reach the main thread a moment later.
      await sleep(100);
      write.mockClear();
      const quiet = await Llama.load({ modelPath: STORIES(), nCtx: 64, nThreads: 1, verbose: false });
      await quiet.createCompletion("Once", { maxTokens: 2 });
      await quiet.dispose();
      // The quiet load's own lines (the loud one's came before the clear).
      expect(write.mock.calls.filter(([text]) => String(text).includes("llama_model_loader"))).toEqual([]);
    } finally {
      write.mockRestore();
    }
  });
});
