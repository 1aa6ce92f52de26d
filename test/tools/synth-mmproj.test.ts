// Synthetic projectors, images and sounds: the files are what they claim (deterministic, well-formed),
// and llama.cpp's own llama-mtmd-cli loads the projectors beside stories260K, turns each image or
// sound into the expected number of embeddings, and writes different text for different inputs.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { readGgufHeader } from "../../lib/gguf/reader.js";
import { crc32, encodeBmp, encodePng, encodeWav, hugePng, seededImage, seededSound, truncatedPng } from "../../lib/tools/synth-media.js";
import { AUDIO_CLIP_TOKENS, synthesizeProjector, VISION_IMAGE_TOKENS } from "../../lib/tools/synth-mmproj.js";
import { imageFile, projectorModel, soundFile } from "../fixtures.js";
import { modelPath } from "../helpers.js";
import { mtmdCliGreedy, type MtmdCliOptions } from "../mtmd-cli.js";

const dir = mkdtempSync(join(tmpdir(), "llama-napi-mmproj-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The chunks of a PNG: type, data, and whether the stored CRC is right. */
function pngChunks(png: Buffer): Array<{ type: string; data: Buffer; crcOk: boolean }> {
  const chunks = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const data = png.subarray(at + 8, at + 8 + length);
    chunks.push({ type: png.toString("latin1", at + 4, at + 8), data, crcOk: png.readUInt32BE(at + 8 + length) === crc32(png.subarray(at + 4, at + 8 + length)) });
    at += 12 + length;
  }
  return chunks;
}

describe("synthesizeProjector", () => {
  it("writes the same file for the same seed and another for another seed", async () => {
    const files = [];
    for (const [i, seed] of [1, 1, 2].entries()) {
      const outPath = join(dir, `vision-${i}.gguf`);
      await synthesizeProjector({ outPath, nEmbdOut: 64, kind: "vision", seed });
      files.push(readFileSync(outPath));
    }
    const [a, b, c] = files;
    expect(a!.equals(b!)).toBe(true);
    expect(a!.equals(c!)).toBe(false);
  });

  it("writes clip.cpp's LLaVA and Ultravox layouts, projecting to the width asked", async () => {
    const vision = await readGgufHeader(await projectorModel("vision"));
    expect(vision.metadata["clip.projector_type"]).toBe("mlp");
    expect(vision.tensors.find((t) => t.name === "mm.2.weight")?.dims).toEqual([64, 64]);
    expect(vision.tensors.find((t) => t.name === "v.patch_embd.weight")?.dims).toEqual([14, 14, 3, 32]);
    const audio = await readGgufHeader(await projectorModel("audio"));
    expect(audio.metadata["clip.projector_type"]).toBe("ultravox");
    expect(audio.tensors.find((t) => t.name === "mm.a.mlp.2.weight")?.dims).toEqual([64, 64]);
  });

  it("refuses a kind or width it cannot write", async () => {
    await expect(synthesizeProjector({ outPath: join(dir, "x.gguf"), nEmbdOut: 0, kind: "vision" })).rejects.toThrow(RangeError);
    await expect(synthesizeProjector({ outPath: join(dir, "x.gguf"), nEmbdOut: 64, kind: "video" as "vision" })).rejects.toThrow(RangeError);
  });
});

describe("synthetic media", () => {
  it("encodes a seeded image as a PNG whose chunks and pixels check out", () => {
    const image = seededImage(5, 3, 1);
    const chunks = pngChunks(encodePng(image));
    expect(chunks.map((c) => [c.type, c.crcOk])).toEqual([["IHDR", true], ["IDAT", true], ["IEND", true]]);
    // CRC-32 of "IEND", which every PNG ends with.
    expect(crc32(Buffer.from("IEND"))).toBe(0xae426082);
    const scanlines = inflateSync(chunks[1]!.data);
    for (let y = 0; y < 3; y++) {
      expect(scanlines[y * 16]).toBe(0);
      expect(scanlines.subarray(y * 16 + 1, (y + 1) * 16).equals(image.rgb.subarray(y * 15, (y + 1) * 15))).toBe(true);
    }
    expect(encodePng(seededImage(5, 3, 1)).equals(encodePng(image))).toBe(true);
    expect(encodePng(seededImage(5, 3, 2)).equals(encodePng(image))).toBe(false);
  });

  it("encodes a BMP with padded bottom-up BGR rows", () => {
    const bmp = encodeBmp({ width: 1, height: 2, rgb: Uint8Array.from([1, 2, 3, 4, 5, 6]) });
    expect(bmp.length).toBe(54 + 2 * 4);
    expect([...bmp.subarray(54)]).toEqual([6, 5, 4, 0, 3, 2, 1, 0]);
  });

  it("makes broken PNGs: one cut short, one declaring 20000×20000 pixels", () => {
    const png = encodePng(seededImage(56, 56, 1));
    const cut = truncatedPng(png);
    expect(cut.length).toBeLessThan(png.length);
    expect(png.subarray(0, cut.length).equals(cut)).toBe(true);
    const huge = hugePng();
    expect(huge.length).toBeLessThan(1000);
    expect([huge.readUInt32BE(16), huge.readUInt32BE(20)]).toEqual([20000, 20000]);
    expect(pngChunks(huge).every((c) => c.crcOk)).toBe(true);
  });

  it("encodes seeded sound as 16-bit mono WAV", () => {
    const wav = encodeWav(seededSound(0.5, 1));
    expect(wav.toString("latin1", 0, 4) + wav.toString("latin1", 8, 12)).toBe("RIFFWAVE");
    expect([wav.readUInt16LE(22), wav.readUInt32LE(24), wav.readUInt16LE(34), wav.readUInt32LE(40)]).toEqual([1, 16000, 16, 16000]);
    expect(encodeWav(seededSound(0.5, 1)).equals(wav)).toBe(true);
  });
});

describe("llama-mtmd-cli with the synthetic projectors and stories260K", () => {
  const greedy = async (media: Pick<MtmdCliOptions, "image" | "audio">) =>
    mtmdCliGreedy({
      model: modelPath("stories260K.gguf"),
      mmproj: await projectorModel(media.image !== undefined ? "vision" : "audio"),
      ...media,
      prompt: "Once upon a time",
      nPredict: 16,
      chatTemplate: "chatml",
    });

  it("turns an image into one embedding per patch, and different images into different text", async () => {
    const first = await greedy({ image: await imageFile(1) });
    expect(first.imageTokens).toBe(VISION_IMAGE_TOKENS);
    expect(first.text.length).toBeGreaterThan(0);
    expect((await greedy({ image: await imageFile(2) })).text).not.toBe(first.text);
    // The same pixels as a BMP: the same text.
    expect(await greedy({ image: await imageFile(1, "bmp") })).toEqual(first);
  });

  it("turns a sound into Ultravox's stacked frames, and different sounds into different text", async () => {
    const first = await greedy({ audio: await soundFile(1) });
    expect(first.imageTokens).toBe(AUDIO_CLIP_TOKENS);
    expect((await greedy({ audio: await soundFile(2) })).text).not.toBe(first.text);
  });

  it("refuses a projector narrower than the model", async () => {
    const narrow = join(dir, "narrow.gguf");
    await synthesizeProjector({ outPath: narrow, nEmbdOut: 32, kind: "vision" });
    const run = async () => mtmdCliGreedy({ model: modelPath("stories260K.gguf"), mmproj: narrow, image: await imageFile(1), prompt: "x", nPredict: 2, chatTemplate: "chatml" });
    await expect(run()).rejects.toThrow(/mismatch between text model \(n_embd = 64\) and mmproj \(n_embd = 32\)/);
  });
});
