#!/usr/bin/env node
// Vocabulary-only seed GGUFs for the tokenizer types that no file on disk has: UGM
// (tokenizer.ggml.model "t5", with a precompiled_charsmap), RWKV ("rwkv") and PLaMo-2 ("plamo2").
// Each is small (a few hundred tokens, 6-19 KB) but laid out as llama.cpp's converters write them
// and as vendor/llama.cpp/src/llama-vocab.cpp reads them. Deterministic: the same bytes every run.
// scripts/gguf-mutate.mjs takes them from memory; this script also writes them out for a look:
//
//   node scripts/vocab-seeds.mjs [--out test/.fuzz-seeds]
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// ---------------------------------------------------------------------------------------------
// GGUF v3 bytes: header and metadata only (vocabulary files have no tensors).

const TYPE_IDS = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 };

class Sink {
  constructor() {
    this.parts = [];
  }
  u32(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.parts.push(b);
  }
  i32(v) {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.parts.push(b);
  }
  u64(v) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.parts.push(b);
  }
  f32(v) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.parts.push(b);
  }
  string(text) {
    const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, "utf8");
    this.u64(bytes.length);
    this.parts.push(bytes);
  }
  scalar(type, v) {
    if (type === "u8" || type === "bool") this.parts.push(Buffer.from([Number(v) & 0xff]));
    else if (type === "u32") this.u32(v);
    else if (type === "i32") this.i32(v);
    else if (type === "f32") this.f32(v);
    else if (type === "string") this.string(v);
    else throw new TypeError(`vocab-seeds: no encoder for ${type}`);
  }
  bytes() {
    return Buffer.concat(this.parts);
  }
}

/** kvs: [key, type, value] with arrays as [key, "array", { itemType, items }] (items may be a Buffer of u8). */
export function encodeVocabGguf(kvs) {
  const sink = new Sink();
  sink.parts.push(Buffer.from("GGUF", "latin1"));
  sink.u32(3);
  sink.u64(0); // tensors
  sink.u64(kvs.length);
  for (const [key, type, value] of kvs) {
    sink.string(key);
    sink.i32(TYPE_IDS[type]);
    if (type !== "array") {
      sink.scalar(type, value);
      continue;
    }
    sink.i32(TYPE_IDS[value.itemType]);
    sink.u64(value.items.length);
    if (Buffer.isBuffer(value.items)) sink.parts.push(value.items);
    else for (const item of value.items) sink.scalar(value.itemType, item);
  }
  return sink.bytes();
}

// llama_token_type
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const USER_DEFINED = 4;
const UNUSED = 5;
const BYTE = 6;

/** The hyperparameters of vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf: a vocabulary file's usual header. */
function llamaHeader(name, nVocab) {
  return [
    ["general.architecture", "string", "llama"],
    ["general.name", "string", name],
    ["llama.block_count", "u32", 32],
    ["llama.context_length", "u32", 4096],
    ["llama.embedding_length", "u32", 4096],
    ["llama.feed_forward_length", "u32", 11008],
    ["llama.attention.head_count", "u32", 32],
    ["llama.attention.head_count_kv", "u32", 32],
    ["llama.attention.layer_norm_rms_epsilon", "f32", 1e-5],
    ["general.file_type", "u32", 1],
    ["llama.vocab_size", "u32", nVocab],
    ["llama.rope.dimension_count", "u32", 128],
  ];
}

/** A small, fixed pseudo-random score in [lo, hi): the same every run. */
function score(i, lo, hi) {
  const h = (Math.imul(i + 1, 0x9e3779b1) >>> 0) / 4294967296;
  return Math.fround(lo + (hi - lo) * h);
}

const PRINTABLE = Array.from({ length: 126 - 33 + 1 }, (_, i) => String.fromCharCode(33 + i));
// Words of scripts/fuzz-gguf-child.cjs's prompt and the tests' "Hello world", so that they
// tokenize into words rather than characters.
const WORDS = ["Hello", "world", "Once", "upon", "a", "time", "there", "was", "named", "the", "of", "and", "to", "in", "is", "it", "you", "that", "He", "llo", "wor", "ld", "On", "ce", "up", "on", "ti", "me", "th", "ere", "na", "med"];
const NON_ASCII = ["猫", "ü", "ï", "ö", "é", "ñ", "ß", "日本", "日", "本", "€"];

// ---------------------------------------------------------------------------------------------
// UGM (T5): SentencePiece unigram pieces with "▁" for spaces, log-probability scores, and a
// precompiled_charsmap, the normalizer's table:
//   uint32 xcda_blob_size | XCDA units (uint32 each, xcda_blob_size bytes) | NUL-terminated replacements
// The XCDA (XOR-compressed compact double array, darts-clone's layout) maps input byte sequences
// to offsets in the replacements. A unit holds the label in bits 0-7, a leaf flag in bit 8 and the
// node's offset in bits 10-30 (bit 9 would shift it by 8 more); a value unit has bit 31 set and the
// replacement's offset in bits 0-30. The child of the node at index t with byte c sits at
// t ^ offset(t) ^ c and has label c; a leaf's value unit sits at t ^ offset(t). Every index that
// llama.cpp may compute from a node it reached must be inside the array (it throws otherwise), so
// each inner node gets a whole 256-unit block for its children.

/** The normalization rules of the UGM seed: fullwidth ASCII, ligatures, odd spaces, ellipsis. */
function ugmRules() {
  const rules = [];
  for (let c = 0x21; c <= 0x7e; c++) rules.push([String.fromCodePoint(0xff00 + c - 0x20), String.fromCharCode(c)]);
  rules.push(["ﬁ", "fi"], ["ﬂ", "fl"], ["…", "..."], ["\u00a0", " "], ["\u3000", " "], ["\u2002", " "], ["\r\n", "\n"], ["Å", "Å"]);
  return rules;
}

function plainOffset(offset) {
  if (offset >= 1 << 21) throw new RangeError("charsmap too large for offsets without the extension bit");
  return offset;
}

/** The precompiled_charsmap for `rules` ([from, to] pairs; longest match wins, as in llama.cpp). */
export function buildCharsmap(rules) {
  // Replacement strings, each once, NUL-terminated.
  const replacementOffsets = new Map();
  const replacementParts = [];
  let replacementBytes = 0;
  const trie = { children: new Map(), value: undefined };
  for (const [from, to] of rules) {
    if (!replacementOffsets.has(to)) {
      const bytes = Buffer.concat([Buffer.from(to, "utf8"), Buffer.from([0])]);
      replacementOffsets.set(to, replacementBytes);
      replacementParts.push(bytes);
      replacementBytes += bytes.length;
    }
    let node = trie;
    for (const byte of Buffer.from(from, "utf8")) {
      if (byte === 0) throw new RangeError("charsmap keys cannot hold NUL");
      if (!node.children.has(byte)) node.children.set(byte, { children: new Map(), value: undefined });
      node = node.children.get(byte);
    }
    node.value = replacementOffsets.get(to);
  }

  // Block 0 holds the root (index 0, offset 0) and its children (index = byte). Every other node
  // with children gets the next free block B: offset = t ^ B, children at B + c, its value unit
  // (if any) at B. A leaf without children puts its value unit in any free slot p that is not a
  // block start: no node has p as its base, so no unit at p ^ c carries label c, and p ^ c stays
  // inside p's block.
  const units = [];
  const used = new Set([0]);
  let blocks = 1;
  const ensure = (n) => {
    while (units.length < n) units.push(0);
  };
  ensure(256);
  units[0] = 0;
  const pending = [];
  for (const [byte, child] of trie.children) {
    used.add(byte);
    pending.push({ index: byte, byte, node: child });
  }
  const leafOnly = [];
  while (pending.length > 0) {
    const { index, byte, node } = pending.shift();
    if (node.children.size === 0) {
      leafOnly.push({ index, byte, node });
      continue;
    }
    const base = 256 * blocks++;
    ensure(base + 256);
    const offset = plainOffset(index ^ base);
    units[index] = (offset << 10) | (node.value !== undefined ? 1 << 8 : 0) | byte;
    if (node.value !== undefined) {
      used.add(base);
      units[base] = (0x80000000 | node.value) >>> 0;
    }
    for (const [b, child] of node.children) {
      used.add(base + b);
      pending.push({ index: base + b, byte: b, node: child });
    }
  }
  let free = 1;
  for (const { index, byte, node } of leafOnly) {
    while (used.has(free) || free % 256 === 0) free++;
    if (free >= units.length) ensure(units.length + 256);
    used.add(free);
    units[index] = (plainOffset(index ^ free) << 10) | (1 << 8) | byte;
    units[free] = (0x80000000 | node.value) >>> 0;
  }

  const xcda = Buffer.alloc(units.length * 4);
  units.forEach((u, i) => xcda.writeUInt32LE(u >>> 0, i * 4));
  const size = Buffer.alloc(4);
  size.writeUInt32LE(xcda.length);
  return Buffer.concat([size, xcda, ...replacementParts]);
}

/** The normalization the charsmap performs, in JavaScript: for checks. */
export function applyCharsmap(charsmap, text) {
  const input = Buffer.from(text, "utf8");
  const blob = charsmap.readUInt32LE(0);
  const unit = (i) => {
    if (i >= blob / 4) throw new RangeError("XCDA index out of range");
    return charsmap.readUInt32LE(4 + 4 * i);
  };
  const base = (i) => (unit(i) >>> 10) << ((unit(i) & (1 << 9)) >>> 6);
  const out = [];
  for (let at = 0; at < input.length; ) {
    let node = base(0);
    let length = 0;
    let value = 0;
    for (let p = at; p < input.length && input[p] !== 0; p++) {
      node ^= input[p];
      if ((unit(node) & 0x800000ff) >>> 0 !== input[p]) break;
      const leaf = (unit(node) >>> 8) & 1;
      node ^= base(node);
      if (leaf) {
        length = p - at + 1;
        value = unit(node) & 0x7fffffff;
      }
    }
    if (length > 0) {
      const start = 4 + blob + value;
      out.push(charsmap.subarray(start, charsmap.indexOf(0, start)));
      at += length;
    } else {
      out.push(input.subarray(at, at + 1));
      at += 1;
    }
  }
  return Buffer.concat(out).toString("utf8");
}

function ugmSeed() {
  const tokens = [["<pad>", 0, CONTROL], ["</s>", 0, CONTROL], ["<unk>", 0, UNKNOWN], ["▁", -3, NORMAL]];
  const seen = new Set(tokens.map(([t]) => t));
  const add = (text, s, type = NORMAL) => {
    if (seen.has(text)) return;
    seen.add(text);
    tokens.push([text, s, type]);
  };
  WORDS.forEach((w, i) => add(`▁${w}`, score(i, -9, -5)));
  WORDS.forEach((w, i) => add(w, score(i + 100, -11, -8)));
  PRINTABLE.forEach((c, i) => add(c, score(i + 200, -13, -10)));
  PRINTABLE.forEach((c, i) => add(`▁${c}`, score(i + 300, -14, -11)));
  NON_ASCII.forEach((c, i) => add(c, score(i + 400, -13, -10)));
  // T5's sentinels are user-defined: matched before normalization, scored 0.
  for (let i = 0; i < 3; i++) add(`<extra_id_${i}>`, 0, USER_DEFINED);
  const charsmap = buildCharsmap(ugmRules());
  return encodeVocabGguf([
    ...llamaHeader("t5-ugm-seed", tokens.length),
    ["tokenizer.ggml.model", "string", "t5"],
    ["tokenizer.ggml.pre", "string", "default"],
    ["tokenizer.ggml.tokens", "array", { itemType: "string", items: tokens.map(([t]) => t) }],
    ["tokenizer.ggml.scores", "array", { itemType: "f32", items: tokens.map(([, s]) => s) }],
    ["tokenizer.ggml.token_type", "array", { itemType: "i32", items: tokens.map(([, , t]) => t) }],
    ["tokenizer.ggml.add_space_prefix", "bool", 1],
    ["tokenizer.ggml.remove_extra_whitespaces", "bool", 1],
    ["tokenizer.ggml.precompiled_charsmap", "array", { itemType: "u8", items: charsmap }],
    ["tokenizer.ggml.eos_token_id", "u32", 1],
    ["tokenizer.ggml.unknown_token_id", "u32", 2],
    ["tokenizer.ggml.padding_token_id", "u32", 0],
    ["tokenizer.ggml.add_bos_token", "bool", 0],
    ["tokenizer.ggml.add_eos_token", "bool", 1],
  ]);
}

// ---------------------------------------------------------------------------------------------
// RWKV (world tokenizer): tokens are Python byte-string reprs ("\\n", "\\xe7\\x8c\\xab", "\\'"),
// greedy longest match over the unescaped bytes. Id 0 is "<s>"; 1-256 the single bytes, so every
// input has a tokenization; then longer pieces; then unused padding, as convert_hf_to_gguf writes.

/** Python's repr of a bytes object, without the b'' around it (what llama_unescape_rwkv_token undoes). */
function rwkvEscape(bytes) {
  let out = "";
  for (const b of bytes) {
    if (b === 0x5c) out += "\\\\";
    else if (b === 0x27) out += "\\'";
    else if (b === 0x09) out += "\\t";
    else if (b === 0x0a) out += "\\n";
    else if (b === 0x0d) out += "\\r";
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

function rwkvSeed() {
  const tokens = [["<s>", CONTROL]];
  for (let b = 0; b < 256; b++) tokens.push([rwkvEscape([b]), NORMAL]);
  const seen = new Set(tokens.map(([t]) => t));
  const add = (text, type = NORMAL) => {
    const escaped = rwkvEscape(Buffer.from(text, "utf8"));
    if (seen.has(escaped)) return;
    seen.add(escaped);
    tokens.push([escaped, type]);
  };
  add("\n\n");
  const eot = tokens.length - 1;
  for (const w of WORDS) {
    add(w);
    add(` ${w}`);
  }
  for (const c of NON_ASCII) {
    add(c);
    add(` ${c}`);
  }
  add("\r\n");
  add("  ");
  add("'s");
  add("\\n");
  const padFrom = tokens.length;
  for (let i = padFrom; i < padFrom + 2; i++) tokens.push([`[PAD${i}]`, UNUSED]);
  return encodeVocabGguf([
    ...llamaHeader("rwkv-world-seed", tokens.length),
    ["tokenizer.ggml.model", "string", "rwkv"],
    ["tokenizer.ggml.tokens", "array", { itemType: "string", items: tokens.map(([t]) => t) }],
    ["tokenizer.ggml.token_type", "array", { itemType: "i32", items: tokens.map(([, t]) => t) }],
    ["tokenizer.ggml.bos_token_id", "u32", 0],
    ["tokenizer.ggml.eos_token_id", "u32", 0],
    ["tokenizer.ggml.eot_token_id", "u32", eot],
    ["tokenizer.chat_template", "string", "rwkv-world"],
  ]);
}

// ---------------------------------------------------------------------------------------------
// PLaMo-2: unk, bos, eos, pad, then all 256 byte tokens "<0xXX>" of type BYTE (llama.cpp refuses
// the vocabulary unless each byte has one: it falls back to them), then scored pieces with plain
// spaces (no "▁").

function plamo2Seed() {
  const tokens = [["<|plamo:unk|>", 0, UNKNOWN], ["<|plamo:bos|>", 0, CONTROL], ["<|plamo:eos|>", 0, CONTROL], ["<|plamo:pad|>", 0, CONTROL]];
  for (let b = 0; b < 256; b++) tokens.push([`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0, BYTE]);
  const seen = new Set(tokens.map(([t]) => t));
  const add = (text, s) => {
    if (seen.has(text)) return;
    seen.add(text);
    tokens.push([text, s, NORMAL]);
  };
  add(" ", -4);
  add("\n", -4.5);
  WORDS.forEach((w, i) => add(` ${w}`, score(i, -9, -5)));
  WORDS.forEach((w, i) => add(w, score(i + 100, -11, -8)));
  PRINTABLE.forEach((c, i) => add(c, score(i + 200, -13, -10)));
  NON_ASCII.forEach((c, i) => add(c, score(i + 400, -13, -10)));
  add("<|plamo:op|>", 0);
  tokens[tokens.length - 1][2] = CONTROL;
  return encodeVocabGguf([
    ...llamaHeader("plamo2-seed", tokens.length),
    ["tokenizer.ggml.model", "string", "plamo2"],
    ["tokenizer.ggml.pre", "string", "default"],
    ["tokenizer.ggml.tokens", "array", { itemType: "string", items: tokens.map(([t]) => t) }],
    ["tokenizer.ggml.scores", "array", { itemType: "f32", items: tokens.map(([, s]) => s) }],
    ["tokenizer.ggml.token_type", "array", { itemType: "i32", items: tokens.map(([, , t]) => t) }],
    ["tokenizer.ggml.bos_token_id", "u32", 1],
    ["tokenizer.ggml.eos_token_id", "u32", 2],
    ["tokenizer.ggml.unknown_token_id", "u32", 0],
    ["tokenizer.ggml.padding_token_id", "u32", 3],
    ["tokenizer.ggml.add_bos_token", "bool", 1],
    ["tokenizer.ggml.add_eos_token", "bool", 0],
  ]);
}

/** The seeds: name (as in test/.fuzz-seeds/ggml-vocab-<name>.gguf), llama.cpp vocab type id, bytes. */
export function vocabSeeds() {
  return [
    { name: "t5-ugm", vocabType: 4, bytes: ugmSeed() },
    { name: "rwkv-world", vocabType: 5, bytes: rwkvSeed() },
    { name: "plamo2", vocabType: 6, bytes: plamo2Seed() },
  ];
}

export const SEED_DIR = join(root, "test", ".fuzz-seeds");

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args.includes("--help")) {
    console.log("usage: node scripts/vocab-seeds.mjs [--out test/.fuzz-seeds]");
    process.exit(0);
  }
  const outAt = args.indexOf("--out");
  const out = outAt >= 0 ? resolve(args[outAt + 1]) : SEED_DIR;
  mkdirSync(out, { recursive: true });
  for (const seed of vocabSeeds()) {
    const path = join(out, `ggml-vocab-${seed.name}.gguf`);
    writeFileSync(path, seed.bytes);
    console.log(`${path}: ${seed.bytes.length} bytes`);
  }
  console.log(`UGM charsmap: "Ｈｅｌｌｏ ﬁ…" normalizes to ${JSON.stringify(applyCharsmap(buildCharsmap(ugmRules()), "Ｈｅｌｌｏ ﬁ…"))}`);
}
