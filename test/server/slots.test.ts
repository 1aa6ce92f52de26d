// POST /slots/{id}?action=save|restore|erase on `llama-napi serve --slot-save-path DIR`: a slot's
// prompt cache to a file and back (the same continuation, without evaluating the prompt again),
// into the same slot or another, beside other slots' caches; hostile file names refused with no
// file touched; bad ids and actions 400; off (501) without the flag.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Llama } from "../../lib/index.js";
import { startServer, type OpenAIServer } from "../../lib/server/index.js";
import { modelPath, sleep } from "../helpers.js";
import { json, raw } from "./raw-http.js";

const KEY = "test-key";
const AUTH = { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" };
const STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park";
const OTHER = "Tom had a big red ball. One day he went to the park with his mom and";
// Greedy, with the end of story (token 2) banned: every answer is 8 tokens.
const GREEDY = { max_tokens: 8, temperature: 0, logit_bias: { "2": -100 } };

describe("slot files", () => {
  let llama: Llama;
  let server: OpenAIServer;
  let off: OpenAIServer;
  let base: string;
  const parent = mkdtempSync(join(tmpdir(), "llama-napi-slots-"));
  const dir = join(parent, "slots");
  const outside = join(parent, "outside.bin");

  const slot = (id: number | string, query: string, body?: unknown) => raw(base, "POST", `/slots/${id}${query}`, { headers: AUTH, body });
  /** A greedy completion: its text and how many tokens the server decoded for it. */
  const complete = async (prompt: string) => {
    const before = llama.stats.tokens;
    const res = json(await raw(base, "POST", "/v1/completions", { headers: AUTH, body: { prompt, ...GREEDY } }));
    return { text: (res.choices as Array<{ text: string }>)[0]!.text, decoded: llama.stats.tokens - before };
  };
  const ranges = () => [llama.context!.positionRange(0), llama.context!.positionRange(1)];
  const listing = () => ({ dir: readdirSync(dir).sort(), parent: readdirSync(parent).sort() });

  beforeAll(async () => {
    mkdirSync(dir);
    writeFileSync(outside, "not yours");
    llama = await Llama.load({ modelPath: modelPath("stories260K.gguf"), nCtx: 256, nThreads: 1, nParallel: 2 });
    server = await startServer({ llama, port: 0, apiKey: KEY, maxTokensCap: 32, slotSavePath: dir });
    off = await startServer({ llama, port: 0 });
    base = server.url.replace(/\/v1$/, "");
  });
  afterAll(async () => {
    await server?.close(0);
    await off?.close(0);
    await llama?.dispose();
    rmSync(parent, { recursive: true, force: true });
  });

  it("save → erase → restore: llama-server's answers, and the same continuation without the prompt evaluated again", async () => {
    const first = await complete(STORY);
    const promptTokens = llama.tokenize(STORY).length;
    expect(first.decoded).toBe(promptTokens + 7);
    const held = first.decoded;
    expect(ranges()).toEqual([[0, held - 1], [-1, -1]]);

    const saved = json(await slot(0, "?action=save", { filename: "story.bin" }));
    expect(saved).toEqual({ id_slot: 0, filename: "story.bin", n_saved: held, n_written: readFileSync(join(dir, "story.bin")).length, timings: { save_ms: expect.any(Number) } });
    expect(ranges()).toEqual([[0, held - 1], [-1, -1]]);

    // Erased, the prompt is evaluated again.
    expect(json(await slot(0, "?action=erase"))).toEqual({ id_slot: 0, n_erased: held });
    expect(ranges()).toEqual([[-1, -1], [-1, -1]]);
    expect(await complete(STORY)).toEqual(first);
    expect(json(await slot(0, "?action=erase", {}))).toEqual({ id_slot: 0, n_erased: held });

    const restored = json(await slot(0, "?action=restore", { filename: "story.bin" }));
    expect(restored).toEqual({ id_slot: 0, filename: "story.bin", n_restored: held, n_read: saved.n_written, timings: { restore_ms: expect.any(Number) } });
    expect(ranges()).toEqual([[0, held - 1], [-1, -1]]);
    // Restored: only the last prompt token is evaluated again, and the text is the same.
    expect(await complete(STORY)).toEqual({ text: first.text, decoded: 8 });
  });

  it("restores into another slot: the cache moves there and serves the same continuation", async () => {
    const reference = await complete(STORY);
    await slot(0, "?action=erase");
    const restored = json(await slot(1, "?action=restore", { filename: "story.bin" }));
    expect(restored).toMatchObject({ id_slot: 1, filename: "story.bin", n_restored: expect.any(Number) });
    const held = restored.n_restored as number;
    expect(ranges()).toEqual([[-1, -1], [0, held - 1]]);
    expect(await complete(STORY)).toEqual({ text: reference.text, decoded: 8 });
    expect(ranges()).toEqual([[-1, -1], [0, held - 1]]);
    // Moved and saved again before any decode: the file holds the moved entries, not what the slot held before.
    await slot(1, "?action=erase");
    await slot(0, "?action=restore", { filename: "story.bin" });
    await slot(1, "?action=restore", { filename: "story.bin" });
    expect(json(await slot(1, "?action=save", { filename: "moved.bin" })).n_saved).toBe(held);
    await slot(1, "?action=erase");
    await slot(1, "?action=restore", { filename: "moved.bin" });
    expect(await complete(STORY)).toEqual({ text: reference.text, decoded: 8 });
  });

  it("a save holds its own slot alone and leaves the other slot's cache in place; a restore empties the others", async () => {
    await slot(0, "?action=erase");
    await slot(1, "?action=erase");
    // Two at once take both slots.
    await Promise.all([complete(STORY), complete(OTHER)]);
    const lengths = [STORY, OTHER].map((prompt) => llama.tokenize(prompt).length + 7);
    expect(lengths[0]).not.toBe(lengths[1]);
    const before = ranges();
    const storySlot = before.findIndex(([first, last]) => first === 0 && last === lengths[0]! - 1);
    const otherSlot = 1 - storySlot;
    expect(before[otherSlot]).toEqual([0, lengths[1]! - 1]);
    // Alone now, each reuses its cache.
    const story = await complete(STORY);
    const other = await complete(OTHER);
    expect([story.decoded, other.decoded]).toEqual([8, 8]);

    const saved = json(await slot(otherSlot, "?action=save", { filename: "other.bin" }));
    expect(saved.n_saved).toBe(lengths[1]);
    expect(ranges()).toEqual(before);
    // Both caches still hold what they held: the same answers, neither prompt evaluated again.
    expect(await complete(STORY)).toEqual(story);
    expect(await complete(OTHER)).toEqual(other);

    const restored = json(await slot(storySlot, "?action=restore", { filename: "other.bin" }));
    expect(restored.n_restored).toBe(lengths[1]);
    const after = ranges();
    expect(after[storySlot]).toEqual([0, lengths[1]! - 1]);
    expect(after[otherSlot]).toEqual([-1, -1]);
    expect(await complete(OTHER)).toEqual(other);
  });

  it("a slot action waits for the generations in flight, and a request made meanwhile waits for it", async () => {
    // A stream nobody reads holds its sequence: the erase waits until it is read to the end.
    const stream = llama.createCompletion(STORY, { maxTokens: 16, temperature: 0, stream: true });
    const first = await stream.next();
    expect(first.done).toBe(false);
    let erased: number | null = null;
    const erase = llama.slots.erase(0).then((n) => (erased = n));
    await sleep(50);
    expect(erased).toBeNull();
    let answered = false;
    const later = complete(OTHER).then((res) => ((answered = true), res));
    await sleep(50);
    expect([erased, answered]).toEqual([null, false]);
    for await (const chunk of stream) expect(chunk.object).toBe("text_completion");
    await erase;
    expect(erased).toBeGreaterThanOrEqual(0);
    expect((await later).text).not.toBe("");
  });

  it("hostile file names are 400s that touch no file, inside the directory or outside it", async () => {
    symlinkSync(outside, join(dir, "link.bin"));
    mkdirSync(join(dir, "sub"));
    const names: unknown[] = [
      "../outside.bin", "../escape.bin", "..", ".", "", "/etc/passwd", outside, "a/b.bin", "sub/x.bin", "a\\b.bin", "..\\escape.bin",
      "x\u0000.bin", "\u0000", "a:b", "C:\\escape.bin", " lead.bin", "trail.bin ", "trail.", "x..y", "a\u2215b", "\uff0e\uff0e", "bad\ud800",
      "\u001b[31m", "x".repeat(256), "link.bin", "sub", 7, null, ["story.bin"], { name: "x" },
    ];
    const before = listing();
    for (const filename of names) {
      for (const action of ["save", "restore"]) {
        const res = await slot(0, `?action=${action}`, { filename });
        expect(res.status, `${action} ${JSON.stringify(filename)}`).toBe(400);
        expect(json(res).error, `${action} ${JSON.stringify(filename)}`).toMatchObject({ type: "invalid_request_error", param: "filename" });
      }
    }
    expect(listing()).toEqual(before);
    expect(readFileSync(outside, "utf8")).toBe("not yours");
    expect(existsSync(join(parent, "escape.bin"))).toBe(false);
    // A name made of dots and letters is fine.
    expect((await slot(0, "?action=save", { filename: "v1.2_story-copy.bin" })).status).toBe(200);
  });

  it("slot ids out of range, unknown actions and bad bodies are 400s; GET is 405", async () => {
    for (const id of ["2", "-1", "abc", "1.0", "1e0", "0x1", "99999999999", "%20"]) {
      const res = await slot(id, "?action=erase");
      expect(res.status, id).toBe(400);
      expect(json(res).error, id).toMatchObject({ param: "id_slot" });
    }
    for (const query of ["", "?action=", "?action=delete", "?action=SAVE"]) {
      const res = await slot(0, query, { filename: "x.bin" });
      expect(res.status, query).toBe(400);
      expect(json(res).error, query).toMatchObject({ param: "action" });
    }
    expect(json(await slot(0, "?action=save")).error).toMatchObject({ message: expect.stringMatching(/JSON object/) });
    expect(json(await slot(0, "?action=save", {})).error).toMatchObject({ param: "filename", code: "missing_required_parameter" });
    expect(json(await slot(0, "?action=save", "{")).error).toMatchObject({ code: "invalid_json" });
    expect((await raw(base, "GET", "/slots/0?action=save", { headers: AUTH })).status).toBe(405);
    expect((await raw(base, "POST", "/slots/0?action=erase")).status).toBe(401);
  });

  it("restoring a missing or broken file is a 400; the server goes on as before", async () => {
    const reference = await complete(STORY);
    expect(json(await slot(0, "?action=restore", { filename: "missing.bin" })).error).toMatchObject({ param: "filename", code: "file_not_found" });
    writeFileSync(join(dir, "garbage.bin"), Buffer.alloc(4096, 7));
    writeFileSync(join(dir, "empty.bin"), "");
    for (const filename of ["garbage.bin", "empty.bin"]) {
      const res = await slot(1, "?action=restore", { filename });
      expect(res.status, filename).toBe(400);
      expect(json(res).error, filename).toMatchObject({ param: "filename", code: "invalid_slot_file" });
    }
    expect(ranges()).toEqual([[-1, -1], [-1, -1]]);
    expect((await complete(STORY)).text).toBe(reference.text);
  });

  it("without --slot-save-path, slot actions are 501 as llama-server's", async () => {
    const res = await raw(off.url.replace(/\/v1$/, ""), "POST", "/slots/0?action=save", { body: { filename: "x.bin" } });
    expect(res.status).toBe(501);
    expect(json(res).error).toMatchObject({ type: "not_supported_error", code: "not_supported", message: expect.stringMatching(/--slot-save-path/) });
  });
});
