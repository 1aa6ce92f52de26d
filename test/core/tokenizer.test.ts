// Tokenization equals llama.cpp's expected ids for every vocabulary test file in its source tree
// (the .inp/.out pairs that llama.cpp's test-tokenizer-0 checks), and detokenize round-trips.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LlamaModel } from "../../lib/index.js";
import { llamaCppDir } from "../helpers.js";

const SEPARATOR = "\n__ggml_vocab_test__\n";
const modelsFolder = join(llamaCppDir(), "models");
const vocabs = readdirSync(modelsFolder)
  .filter((f) => /^ggml-vocab-.*\.gguf$/.test(f))
  .filter((f) => existsSync(join(modelsFolder, f + ".inp")) && existsSync(join(modelsFolder, f + ".out")))
  .sort();

function readCases(vocab: string): Array<{ text: string; ids: number[] }> {
  const raw = readFileSync(join(modelsFolder, vocab + ".inp"), "utf8");
  const texts: string[] = [];
  for (let pos = 0; pos < raw.length; ) {
    const next = raw.indexOf(SEPARATOR, pos);
    if (next < 0) {
      texts.push(raw.slice(pos));
      break;
    }
    texts.push(raw.slice(pos, next));
    pos = next + SEPARATOR.length;
  }
  const lines = readFileSync(join(modelsFolder, vocab + ".out"), "utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  expect(lines.length).toBe(texts.length);
  return texts.map((text, i) => ({
    text,
    ids: lines[i]!.trim() === "" ? [] : lines[i]!.trim().split(/\s+/).map(Number),
  }));
}

it("finds llama.cpp's tokenizer test files", () => {
  expect(vocabs.length).toBeGreaterThanOrEqual(10);
  expect(vocabs).toContain("ggml-vocab-llama-bpe.gguf");
  expect(vocabs).toContain("ggml-vocab-llama-spm.gguf");
});

describe.each(vocabs)("%s", (vocab) => {
  let model: LlamaModel;
  beforeAll(async () => {
    model = await LlamaModel.load(join(modelsFolder, vocab), { vocabOnly: true });
  });
  afterAll(() => model?.dispose());

  it("tokenizes every test text to llama.cpp's expected ids", () => {
    const cases = readCases(vocab);
    expect(cases.length).toBeGreaterThan(10);
    for (const { text, ids } of cases) {
      expect({ text, ids: Array.from(model.tokenize(text, { addSpecial: false, parseSpecial: false })) }).toEqual({ text, ids });
    }
  });

  it("detokenizes the expected ids and tokenizes that text back to the same ids", () => {
    for (const { ids } of readCases(vocab)) {
      const text = model.detokenize(ids);
      const again = Array.from(model.tokenize(text, { addSpecial: false }));
      expect(model.detokenize(again)).toBe(text);
    }
  });
});

describe("round trip on the Llama 3 vocabulary", () => {
  it("detokenize(tokenize(text)) gives the text back, emoji and CJK included", async () => {
    const model = await LlamaModel.load(join(modelsFolder, "ggml-vocab-llama-bpe.gguf"), { vocabOnly: true });
    try {
      for (const text of ["Hello world", " leading space", "日本語 and 中文 🦙🔥", "tabs\tand\nnewlines\n\n", "<|eot_id|> literal"]) {
        expect(model.detokenize(model.tokenize(text, { addSpecial: false }))).toBe(text);
      }
      const withBos = model.tokenize("Hi", { addSpecial: true });
      expect(withBos[0]).toBe(model.info.bos);
      expect(model.detokenize(withBos, { removeSpecial: true })).toBe("Hi");
      const special = model.tokenize("<|eot_id|>", { addSpecial: false, parseSpecial: true });
      expect(Array.from(special)).toEqual([model.info.eot]);
      expect(model.isEog(model.info.eot)).toBe(true);
      expect(model.detokenize(special, { unparseSpecial: true })).toBe("<|eot_id|>");
    } finally {
      model.dispose();
    }
  });
});
