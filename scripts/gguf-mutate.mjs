// Deterministic GGUF mutations for scripts/fuzz-gguf.mjs and test/robustness/fuzz.test.ts: maps well-formed
// seed files field by field and damages one region at a time (magic, version, counts, key/value
// types and lengths, strings, arrays, tensor names, shapes, types and offsets, alignment,
// truncation), or lays a file out again with another alignment. Case i of seed s is always the
// same bytes.
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SEED_DIR, vocabSeeds } from "./vocab-seeds.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: case i of seed s always gets the same stream.

function hash32(a, b) {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seeded generator (mulberry32) for case `index` of a run seeded `seed`. */
export class Random {
  constructor(seed, index) {
    this.state = hash32(seed, index) || 1;
  }
  /** mulberry32 */
  next() {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n) {
    return Math.floor(this.next() * n);
  }
  range(lo, hi) {
    return lo + this.int(hi - lo + 1);
  }
  pick(list) {
    return list[this.int(list.length)];
  }
  chance(p) {
    return this.next() < p;
  }
}

// ---------------------------------------------------------------------------------------------
// GGUF layout of a well-formed seed file: where every field lies, so that mutations can aim.

const VALUE_TYPES = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
const FIXED_WIDTH = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8 };
const T = Object.fromEntries(VALUE_TYPES.map((name, id) => [name, id]));

/**
 * Maps a GGUF file. Throws on anything implausible: seed files are well-formed, and the output of
 * a first mutation is aimed at again only when it still maps.
 */
function mapGguf(buf, typeInfo) {
  let p = 24;
  const kvs = [];
  const tensors = [];
  const need = (n) => {
    if (!(n >= 0 && p + n <= buf.length)) throw new RangeError(`implausible GGUF: ${n} bytes at ${p}`);
  };
  const readString = () => {
    need(8);
    const lenAt = p;
    const len = Number(buf.readBigUInt64LE(p));
    p += 8;
    need(len);
    p += len;
    return { lenAt, at: lenAt + 8, len, text: buf.toString("utf8", lenAt + 8, lenAt + 8 + len) };
  };
  const readValue = (type) => {
    const name = VALUE_TYPES[type];
    if (name === "string") return { string: readString() };
    if (name === "array") {
      need(12);
      const itemTypeAt = p;
      const itemType = buf.readInt32LE(p);
      const countAt = p + 4;
      const count = Number(buf.readBigUInt64LE(p + 4));
      p += 12;
      need(count);
      const items = [];
      // Object literal fields are evaluated in order: `at` before the item is read, `end` after.
      for (let i = 0; i < count; i++) items.push({ at: p, ...readValue(itemType), end: p });
      return { array: { itemTypeAt, itemType, countAt, count, items } };
    }
    const width = FIXED_WIDTH[name];
    if (width === undefined) throw new RangeError(`implausible GGUF: value type ${type}`);
    need(width);
    p += width;
    return { width };
  };
  if (buf.length < 24 || buf.toString("latin1", 0, 4) !== "GGUF") throw new RangeError("implausible GGUF: header");
  const nTensors = Number(buf.readBigInt64LE(8));
  const nKv = Number(buf.readBigInt64LE(16));
  if (!(nTensors >= 0 && nTensors * 24 <= buf.length && nKv >= 0 && nKv * 12 <= buf.length)) throw new RangeError("implausible GGUF: counts");
  for (let i = 0; i < nKv; i++) {
    const start = p;
    const key = readString();
    need(4);
    const typeAt = p;
    const type = buf.readInt32LE(p);
    p += 4;
    const valueAt = p;
    const value = readValue(type);
    kvs.push({ index: i, start, key, typeAt, type, valueAt, value, end: p });
  }
  const alignmentKv = kvs.find((kv) => kv.key.text === "general.alignment");
  const alignment = alignmentKv ? buf.readUInt32LE(alignmentKv.valueAt) : 32;
  if (!(alignment > 0 && (alignment & (alignment - 1)) === 0)) throw new RangeError("implausible GGUF: alignment");
  for (let i = 0; i < nTensors; i++) {
    const start = p;
    const name = readString();
    need(4);
    const nDimsAt = p;
    const nDims = buf.readUInt32LE(p);
    if (nDims > 4) throw new RangeError("implausible GGUF: dimensions");
    const dimsAt = p + 4;
    p = dimsAt;
    need(8 * nDims + 12);
    const dims = [];
    for (let d = 0; d < nDims; d++) dims.push(Number(buf.readBigInt64LE(dimsAt + 8 * d)));
    p = dimsAt + 8 * nDims;
    const typeAt = p;
    const type = buf.readInt32LE(p);
    const offsetAt = p + 4;
    const offset = Number(buf.readBigUInt64LE(p + 4));
    p += 12;
    tensors.push({ index: i, start, name, nDimsAt, nDims, dimsAt, dims, typeAt, type, offsetAt, offset, end: p });
  }
  const headerEnd = p;
  const dataOffset = nTensors > 0 ? Math.ceil(headerEnd / alignment) * alignment : headerEnd;
  for (const t of tensors) {
    const bytes = tensorBytes(t, typeInfo);
    if (!(bytes !== null && t.dims.every((d) => d >= 0) && dataOffset + t.offset + bytes <= buf.length)) {
      throw new RangeError(`implausible GGUF: tensor ${t.name.text}`);
    }
  }
  return { buf, typeInfo, kvs, tensors, headerEnd, dataOffset, alignment, size: buf.length };
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers.

function u32(v) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}
function i64(v) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  return b;
}
function ggufString(text) {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, "utf8");
  return Buffer.concat([i64(bytes.length), bytes]);
}
function encodeScalar(type, value) {
  const b = Buffer.alloc(FIXED_WIDTH[type]);
  switch (type) {
    case "u8":
    case "bool":
      b.writeUInt8(Number(value) & 0xff);
      break;
    case "i8":
      b.writeInt8(((Number(value) + 128) & 0xff) - 128);
      break;
    case "u16":
      b.writeUInt16LE(Number(value) & 0xffff);
      break;
    case "i16":
      b.writeInt16LE(((Number(value) + 32768) & 0xffff) - 32768);
      break;
    case "u32":
      b.writeUInt32LE(Number(BigInt.asUintN(32, BigInt(Math.trunc(Number(value))))));
      break;
    case "i32":
      b.writeInt32LE(Number(BigInt.asIntN(32, BigInt(Math.trunc(Number(value))))));
      break;
    case "f32":
      b.writeFloatLE(Number(value));
      break;
    case "f64":
      b.writeDoubleLE(Number(value));
      break;
    case "u64":
    case "i64":
      b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(typeof value === "number" ? Math.trunc(value) : value)));
      break;
  }
  return b;
}
/** A typed value: type id, then the value bytes (an array value: item type, count, items). */
function encodeTypedValue(type, value) {
  if (type === "string") return Buffer.concat([u32(T.string), ggufString(value)]);
  if (type === "array") {
    const { itemType, items } = value;
    const body = items.map((item) =>
      itemType === "string" ? ggufString(item) : itemType === "array" ? encodeTypedValue("array", item).subarray(4) : encodeScalar(itemType, item),
    );
    return Buffer.concat([u32(T.array), u32(T[itemType]), i64(items.length), ...body]);
  }
  return Buffer.concat([u32(T[type]), encodeScalar(type, value)]);
}

/** A copy of `buf` with [at, end) replaced by `insert`. */
function splice(buf, at, end, insert = Buffer.alloc(0)) {
  return Buffer.concat([buf.subarray(0, at), insert, buf.subarray(end)]);
}
function overwrite(buf, at, bytes) {
  const out = Buffer.from(buf);
  bytes.copy(out, at, 0, Math.max(0, Math.min(bytes.length, out.length - at)));
  return out;
}
function withCount(buf, countAt, delta) {
  const out = Buffer.from(buf);
  out.writeBigInt64LE(out.readBigInt64LE(countAt) + BigInt(delta), countAt);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Interesting values.

const U32_EDGES = [0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 63, 64, 255, 256, 1023, 1024, 4096, 65535, 65536, 2 ** 24, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const I64_EDGES = [0n, 1n, 2n, -1n, -2n, 255n, 65536n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 32n + 1n, 2n ** 53n, 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n), -(2n ** 31n)];
const FLOAT_EDGES = [0, -0, 1, -1, NaN, Infinity, -Infinity, 1e-45, 1e-38, 3.4e38, 1e30, -1e30, 0.5];
const GGML_TYPE_EDGES = [-1, 0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 15, 16, 19, 23, 24, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 38, 39, 40, 41, 42, 43, 44, 100, 0x7fffffff, -2147483648];
const ARCHITECTURES = [
  "llama", "llama4", "gpt2", "gptj", "gptneox", "mpt", "bert", "nomic-bert", "t5", "t5encoder", "mamba", "mamba2",
  "rwkv6", "rwkv7", "qwen2", "qwen3", "qwen3moe", "gemma", "gemma2", "gemma3", "gemma3n", "phi2", "phi3", "falcon",
  "falcon-h1", "bloom", "starcoder", "deepseek2", "jamba", "command-r", "granite", "chatglm", "bitnet", "olmo",
  "wavtokenizer-dec", "clip", "gpt-oss", "lfm2", "", "unknown", "llama ", "LLAMA",
];
const TOKENIZER_MODELS = ["llama", "gpt2", "bert", "t5", "rwkv", "plamo2", "none", "no_vocab", "", "bogus"];
const TOKENIZER_PRES = ["default", "llama3", "llama-bpe", "deepseek-llm", "gpt-2", "qwen2", "falcon", "starcoder", "tekken", "bogus", ""];
const NASTY_STRINGS = [
  "", " ", "a", "\u0000", "a b", "a  b", "Ġ Ġ", "<0x0A>", "<0xZZ>", "<0x>", "▁", "▁▁▁▁", "\n", "\ud83d\ude00", "x".repeat(300),
  Buffer.from([0xff, 0xfe, 0x80]), Buffer.from([0xc3]), Buffer.from([0xe2, 0x82]), "<|endoftext|>", "<s>", "[UNK]",
];

function edgeNear(r, original) {
  const o = BigInt(original);
  return r.pick([o + 1n, o - 1n, o * 2n, o / 2n, o + 2n ** 32n, -o, r.pick(I64_EDGES)]);
}

// ---------------------------------------------------------------------------------------------
// Mutations: each takes the seed file's layout and a Random, returns { bytes, note }.

/** Keys that llama.cpp reads: chosen more often than the rest. */
function pickKv(layout, r) {
  const { kvs } = layout;
  if (r.chance(0.5)) return r.pick(kvs);
  const preferred = kvs.filter((kv) => !kv.key.text.startsWith("general.") || kv.key.text === "general.architecture");
  return r.pick(preferred.length > 0 ? preferred : kvs);
}
function pickArrayKv(layout, r) {
  const arrays = layout.kvs.filter((kv) => kv.value.array && kv.value.array.count > 0);
  return arrays.length > 0 ? r.pick(arrays) : null;
}
function pickTensor(layout, r) {
  return layout.tensors.length > 0 ? r.pick(layout.tensors) : null;
}
function archOf(layout) {
  const kv = layout.kvs.find((k) => k.key.text === "general.architecture");
  return kv?.value.string?.text ?? "llama";
}

/** A replacement value for a key, chosen for what llama.cpp does with that key. */
function nastyValueFor(layout, kv, r) {
  const key = kv.key.text;
  if (key === "general.architecture") return ["string", r.pick(ARCHITECTURES)];
  if (key === "tokenizer.ggml.model") return ["string", r.pick(TOKENIZER_MODELS)];
  if (key === "tokenizer.ggml.pre") return ["string", r.pick(TOKENIZER_PRES)];
  const name = VALUE_TYPES[kv.type];
  if (name === "f32" || name === "f64") return [name, r.pick(FLOAT_EDGES)];
  if (name === "string") return ["string", r.pick(NASTY_STRINGS)];
  if (name === "bool") return ["u8", r.pick([0, 1, 2, 255])];
  if (name === "array") return null;
  if (name === "u64" || name === "i64") return [name, r.pick(I64_EDGES)];
  return [name, r.pick([...U32_EDGES, -1, -2, -2147483648])];
}

const mutations = {
  // --- the fixed header
  "magic": (L, r) => ({
    bytes: overwrite(L.buf, 0, Buffer.from(r.pick(["GGUG", "GGML", "GGJT", "gguf", "FUGG", "\0\0\0\0", "GGU", "GUFF"]), "latin1")),
    note: "magic",
  }),
  "version": (L, r) => {
    const v = r.pick([0, 1, 2, 3, 4, 5, 0x03000000, 0x02000000, 0xffffffff, 0x80000003]);
    return { bytes: overwrite(L.buf, 4, u32(v)), note: `version ${v}` };
  },
  "count.tensors": (L, r) => {
    const v = edgeNear(r, L.tensors.length);
    return { bytes: overwrite(L.buf, 8, i64(v)), note: `tensor count ${v}` };
  },
  "count.kv": (L, r) => {
    const v = edgeNear(r, L.kvs.length);
    return { bytes: overwrite(L.buf, 16, i64(v)), note: `kv count ${v}` };
  },
  // --- keys and values
  "kv.key.length": (L, r) => {
    const kv = pickKv(L, r);
    const v = r.chance(0.5) ? edgeNear(r, kv.key.len) : r.pick(I64_EDGES);
    return { bytes: overwrite(L.buf, kv.key.lenAt, i64(v)), note: `key length of ${kv.key.text} = ${v}` };
  },
  "kv.key.text": (L, r) => {
    const kv = pickKv(L, r);
    const other = r.pick(L.kvs).key.text;
    const key = r.pick([other, "", kv.key.text + "x", kv.key.text.slice(0, -1), kv.key.text.toUpperCase(), "general.alignment", "\u0000", "k".repeat(70000)]);
    return { bytes: splice(L.buf, kv.key.lenAt, kv.typeAt, ggufString(key)), note: `key ${kv.key.text} renamed ${JSON.stringify(key.slice(0, 40))}` };
  },
  "kv.type": (L, r) => {
    const kv = pickKv(L, r);
    const v = r.pick([...VALUE_TYPES.keys(), 13, 14, 255, -1, 0x7fffffff]);
    return { bytes: overwrite(L.buf, kv.typeAt, u32(v)), note: `type of ${kv.key.text} = ${v}` };
  },
  "kv.value": (L, r) => {
    const kv = pickKv(L, r);
    const replacement = nastyValueFor(L, kv, r);
    if (replacement === null) return mutations["kv.retype"](L, r);
    const [type, value] = replacement;
    const bytes = splice(L.buf, kv.typeAt, kv.end, encodeTypedValue(type, value));
    return { bytes, note: `${kv.key.text} = ${type} ${String(value).slice(0, 40)}` };
  },
  "kv.retype": (L, r) => {
    const kv = pickKv(L, r);
    const choices = [
      ["u8", 0], ["i32", -1], ["u32", 0xffffffff], ["f32", NaN], ["bool", 2], ["u64", 2n ** 63n], ["i64", -1n], ["f64", 1e300],
      ["string", ""], ["string", "32"], ["array", { itemType: "i32", items: [] }], ["array", { itemType: "string", items: ["a"] }],
      ["array", { itemType: "f32", items: [1, 2, 3] }], ["array", { itemType: "u32", items: [0, 0xffffffff] }],
      ["array", { itemType: "array", items: [{ itemType: "i32", items: [1] }] }], ["array", { itemType: "bool", items: [1, 0, 7] }],
    ];
    const [type, value] = r.pick(choices);
    return { bytes: splice(L.buf, kv.typeAt, kv.end, encodeTypedValue(type, value)), note: `${kv.key.text} retyped to ${type}` };
  },
  "kv.string.length": (L, r) => {
    const strings = L.kvs.filter((kv) => kv.value.string);
    if (strings.length === 0) return mutations["kv.type"](L, r);
    const kv = r.pick(strings);
    const v = edgeNear(r, kv.value.string.len);
    return { bytes: overwrite(L.buf, kv.value.string.lenAt, i64(v)), note: `string length of ${kv.key.text} = ${v}` };
  },
  "kv.delete": (L, r) => {
    const kv = pickKv(L, r);
    return { bytes: withCount(splice(L.buf, kv.start, kv.end), 16, -1), note: `deleted ${kv.key.text}` };
  },
  "kv.duplicate": (L, r) => {
    const kv = pickKv(L, r);
    const copy = L.buf.subarray(kv.start, kv.end);
    return { bytes: withCount(splice(L.buf, kv.end, kv.end, copy), 16, 1), note: `duplicated ${kv.key.text}` };
  },
  "kv.insert": (L, r) => {
    const arch = archOf(L);
    const key = r.pick([
      `${arch}.attention.head_count_kv`, `${arch}.rope.dimension_count`, `${arch}.expert_count`, `${arch}.expert_used_count`,
      `${arch}.attention.sliding_window`, `${arch}.attention.key_length`, `${arch}.attention.value_length`,
      `${arch}.rope.scaling.type`, `${arch}.rope.scaling.factor`, `${arch}.vocab_size`, `${arch}.attention.causal`,
      "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
      "tokenizer.ggml.precompiled_charsmap", "tokenizer.ggml.add_bos_token", "tokenizer.chat_template", "general.file_type",
      "split.count", "split.no", "tokenizer.ggml.eos_token_ids", "tokenizer.ggml.suppress_tokens",
    ]);
    const choices = [
      ["u32", r.pick(U32_EDGES)], ["i32", -1], ["f32", r.pick(FLOAT_EDGES)], ["string", r.pick(NASTY_STRINGS)], ["bool", 1],
      ["array", { itemType: "string", items: ["a b", "b", "", "x y z"] }], ["array", { itemType: "i32", items: [-1, 0x7fffffff, 0] }],
      ["array", { itemType: "u8", items: [255, 0, 1] }], ["array", { itemType: "u32", items: [0, 1 << 20] }],
    ];
    const [type, value] = r.pick(choices);
    const kv = Buffer.concat([ggufString(key), encodeTypedValue(type, value)]);
    const at = r.pick(L.kvs).end;
    return { bytes: withCount(splice(L.buf, at, at, kv), 16, 1), note: `inserted ${key} = ${type}` };
  },
  // --- arrays (the vocabulary lives here)
  "array.type": (L, r) => {
    const kv = pickArrayKv(L, r);
    if (kv === null) return mutations["kv.type"](L, r);
    const v = r.pick([...VALUE_TYPES.keys(), 13, -1, 0x7fffffff]);
    return { bytes: overwrite(L.buf, kv.value.array.itemTypeAt, u32(v)), note: `element type of ${kv.key.text} = ${v}` };
  },
  "array.count": (L, r) => {
    const kv = pickArrayKv(L, r);
    if (kv === null) return mutations["count.kv"](L, r);
    const v = edgeNear(r, kv.value.array.count);
    return { bytes: overwrite(L.buf, kv.value.array.countAt, i64(v)), note: `element count of ${kv.key.text} = ${v}` };
  },
  "array.resize": (L, r) => {
    // Well-formed GGUF whose arrays disagree: fewer scores than tokens, an empty vocabulary...
    const kv = pickArrayKv(L, r);
    if (kv === null) return mutations["kv.delete"](L, r);
    const { items, countAt, count } = kv.value.array;
    const keep = r.pick([0, 1, count - 1, Math.floor(count / 2), count + 1, count * 2]);
    let bytes;
    let newCount;
    if (keep <= count) {
      const cut = keep === 0 ? items[0].at : items[keep - 1].end;
      bytes = splice(L.buf, cut, items[count - 1].end);
      newCount = keep;
    } else {
      // Grows by repeating the first items: duplicate tokens, merges, scores.
      const extra = Math.min(count, keep - count);
      bytes = splice(L.buf, items[count - 1].end, items[count - 1].end, L.buf.subarray(items[0].at, items[extra - 1].end));
      newCount = count + extra;
    }
    const out = Buffer.from(bytes);
    out.writeBigUInt64LE(BigInt(newCount), countAt);
    return { bytes: out, note: `${kv.key.text} resized ${count} -> ${newCount}` };
  },
  "array.element": (L, r) => {
    const kv = pickArrayKv(L, r);
    if (kv === null) return mutations["kv.value"](L, r);
    const { items, itemType } = kv.value.array;
    const index = r.chance(0.3) ? r.pick([0, 1, 2, 3, items.length - 1]) : r.int(items.length);
    const item = items[Math.min(index, items.length - 1)];
    const name = VALUE_TYPES[itemType];
    if (name === "string") {
      const other = items[r.int(items.length)];
      const replacement = r.chance(0.3) ? L.buf.subarray(other.string.at, other.string.at + other.string.len) : r.pick(NASTY_STRINGS);
      return { bytes: splice(L.buf, item.at, item.end, ggufString(replacement)), note: `${kv.key.text}[${index}] replaced` };
    }
    if (name === "array") return mutations["array.type"](L, r);
    const value = name === "f32" || name === "f64" ? r.pick(FLOAT_EDGES) : r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 255, -1, 0x7fffffff, -2147483648, 65535]);
    return { bytes: overwrite(L.buf, item.at, encodeScalar(name, value)), note: `${kv.key.text}[${index}] = ${value}` };
  },
  "array.string.length": (L, r) => {
    const kv = pickArrayKv(L, r);
    if (kv === null || VALUE_TYPES[kv.value.array.itemType] !== "string") return mutations["kv.string.length"](L, r);
    const { items } = kv.value.array;
    const index = r.int(items.length);
    const v = edgeNear(r, items[index].string.len);
    return { bytes: overwrite(L.buf, items[index].at, i64(v)), note: `length of ${kv.key.text}[${index}] = ${v}` };
  },
  // --- the tensor table
  "tensor.name": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null) return mutations["kv.insert"](L, r);
    const other = r.pick(L.tensors).name.text;
    const name = r.pick([other, "", "x".repeat(63), "x".repeat(64), "x".repeat(200), t.name.text.replace("weight", "bias"), t.name.text + "\u0000", `${t.name.text}.`, "blk.999.attn_q.weight", "blk.-1.attn_q.weight"]);
    return { bytes: splice(L.buf, t.name.lenAt, t.nDimsAt, ggufString(name)), note: `tensor ${t.name.text} renamed ${JSON.stringify(name.slice(0, 40))}` };
  },
  "tensor.name.length": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null) return mutations["count.tensors"](L, r);
    const v = edgeNear(r, t.name.len);
    return { bytes: overwrite(L.buf, t.name.lenAt, i64(v)), note: `name length of ${t.name.text} = ${v}` };
  },
  "tensor.ndims": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null) return mutations["count.tensors"](L, r);
    if (r.chance(0.5)) {
      const v = r.pick([0, 1, 2, 3, 4, 5, 8, 0xffffffff, 0x80000000]);
      return { bytes: overwrite(L.buf, t.nDimsAt, u32(v)), note: `dimension count of ${t.name.text} = ${v} (no resize)` };
    }
    // Add or drop a trailing dimension of size 1: a well-formed table with an unexpected rank.
    const grow = t.nDims < 4 && (t.nDims === 1 || r.chance(0.5));
    let bytes = grow ? splice(L.buf, t.typeAt, t.typeAt, i64(1)) : splice(L.buf, t.typeAt - 8, t.typeAt);
    bytes = overwrite(bytes, t.nDimsAt, u32(t.nDims + (grow ? 1 : -1)));
    return { bytes, note: `${t.name.text} ${grow ? "gains" : "loses"} a dimension` };
  },
  "tensor.dim": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null || t.nDims === 0) return mutations["tensor.type"](L, r);
    const d = r.int(t.nDims);
    const v = r.chance(0.5) ? edgeNear(r, t.dims[d]) : r.pick([0n, 1n, -1n, 32n, 256n, 2n ** 31n, 2n ** 40n, 2n ** 62n, 2n ** 63n - 1n]);
    return { bytes: overwrite(L.buf, t.dimsAt + 8 * d, i64(v)), note: `${t.name.text} dim ${d} = ${v}` };
  },
  "tensor.dims.swap": (L, r) => {
    const t = L.tensors.filter((x) => x.nDims >= 2 && x.dims[0] !== x.dims[1]);
    if (t.length === 0) return mutations["tensor.dim"](L, r);
    const tensor = r.pick(t);
    const out = Buffer.from(L.buf);
    out.writeBigInt64LE(BigInt(tensor.dims[1]), tensor.dimsAt);
    out.writeBigInt64LE(BigInt(tensor.dims[0]), tensor.dimsAt + 8);
    return { bytes: out, note: `${tensor.name.text} transposed` };
  },
  "tensor.type": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null) return mutations["count.tensors"](L, r);
    const v = r.pick(GGML_TYPE_EDGES);
    return { bytes: overwrite(L.buf, t.typeAt, u32(v)), note: `${t.name.text} type = ${v}` };
  },
  "tensor.offset": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null) return mutations["count.tensors"](L, r);
    const a = BigInt(L.alignment);
    const o = BigInt(t.offset);
    const v = r.pick([o + 1n, o - 1n, o + a, o - a, 0n, BigInt(L.size), BigInt(L.size - L.dataOffset), 2n ** 63n - 1n, 2n ** 64n - a, o + 2n ** 32n, BigInt(r.pick(L.tensors).offset)]);
    return { bytes: overwrite(L.buf, t.offsetAt, i64(v)), note: `${t.name.text} offset = ${v}` };
  },
  "tensor.swap": (L, r) => {
    if (L.tensors.length < 2) return mutations["tensor.offset"](L, r);
    const i = r.int(L.tensors.length - 1);
    const [a, b] = [L.tensors[i], L.tensors[i + 1]];
    const swapped = Buffer.concat([L.buf.subarray(b.start, b.end), L.buf.subarray(a.start, a.end)]);
    return { bytes: splice(L.buf, a.start, b.end, swapped), note: `tensor infos ${a.name.text} and ${b.name.text} swapped` };
  },
  "tensor.delete": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null) return mutations["count.tensors"](L, r);
    return { bytes: withCount(splice(L.buf, t.start, t.end), 8, -1), note: `tensor info ${t.name.text} deleted` };
  },
  "tensor.duplicate": (L, r) => {
    const t = pickTensor(L, r);
    if (t === null) return mutations["count.tensors"](L, r);
    return { bytes: withCount(splice(L.buf, t.end, t.end, L.buf.subarray(t.start, t.end)), 8, 1), note: `tensor info ${t.name.text} duplicated` };
  },
  // --- alignment
  "alignment.insert": (L, r) => {
    const [type, value] = r.pick([
      ["u32", 0], ["u32", 1], ["u32", 3], ["u32", 8], ["u32", 16], ["u32", 24], ["u32", 64], ["u32", 4096], ["u32", 0x80000000], ["u32", 0xffffffff],
      ["u64", 32], ["i32", 32], ["u16", 32], ["string", "32"], ["f32", 32], ["array", { itemType: "u32", items: [32] }],
    ]);
    const kv = Buffer.concat([ggufString("general.alignment"), encodeTypedValue(type, value)]);
    const existing = L.kvs.find((k) => k.key.text === "general.alignment");
    const bytes = existing ? splice(L.buf, existing.start, existing.end, kv) : withCount(splice(L.buf, L.kvs.at(-1).end, L.kvs.at(-1).end, kv), 16, 1);
    return { bytes, note: `general.alignment = ${type} ${value}` };
  },
  "alignment.relayout": (L, r) => {
    // A well-formed file with another alignment: the header, tensor offsets and padding all agree.
    if (L.tensors.length === 0) return mutations["alignment.insert"](L, r);
    const alignment = r.pick([1, 2, 8, 16, 64, 256, 4096]);
    const kvBytes = L.kvs.filter((kv) => kv.key.text !== "general.alignment").map((kv) => L.buf.subarray(kv.start, kv.end));
    kvBytes.push(Buffer.concat([ggufString("general.alignment"), encodeTypedValue("u32", alignment)]));
    const exact = L.tensors.map((t) => tensorBytes(t, L.typeInfo));
    let offset = 0;
    const infos = [];
    const blobs = [];
    L.tensors.forEach((t, i) => {
      infos.push(Buffer.concat([L.buf.subarray(t.start, t.offsetAt), i64(offset)]));
      const data = L.buf.subarray(L.dataOffset + t.offset, L.dataOffset + t.offset + exact[i]);
      const padded = Math.ceil(data.length / alignment) * alignment;
      blobs.push(data, Buffer.alloc(padded - data.length));
      offset += padded;
    });
    const head = Buffer.concat([L.buf.subarray(0, 8), i64(L.tensors.length), i64(kvBytes.length), ...kvBytes, ...infos]);
    const pad = Buffer.alloc(Math.ceil(head.length / alignment) * alignment - head.length);
    return { bytes: Buffer.concat([head, pad, ...blobs]), note: `relaid out with alignment ${alignment}` };
  },
  // --- truncation at every region
  "truncate": (L, r) => {
    const boundaries = [0, 1, 3, 4, 6, 8, 12, 16, 20, 24, L.headerEnd, L.dataOffset, L.size - 1];
    for (const kv of L.kvs) boundaries.push(kv.start, kv.key.lenAt + 4, kv.typeAt, kv.typeAt + 2, kv.valueAt, Math.floor((kv.valueAt + kv.end) / 2), kv.end - 1);
    for (const t of L.tensors) boundaries.push(t.start, t.nDimsAt, t.dimsAt, t.typeAt, t.offsetAt, t.end - 1, L.dataOffset + t.offset, L.dataOffset + t.offset + 1);
    const at = r.chance(0.8) ? r.pick(boundaries) : r.int(L.size);
    return { bytes: L.buf.subarray(0, Math.max(0, Math.min(at, L.size - 1))), note: `truncated at ${at}` };
  },
  // --- blind damage
  "bytes.header": (L, r) => {
    const out = Buffer.from(L.buf);
    const flips = r.range(1, 8);
    for (let i = 0; i < flips; i++) {
      const at = r.int(L.headerEnd);
      out[at] = r.chance(0.5) ? out[at] ^ (1 << r.int(8)) : r.pick([0x00, 0xff, 0x7f, 0x80, 0x01, r.int(256)]);
    }
    return { bytes: out, note: `${flips} header bytes damaged` };
  },
  "bytes.splice": (L, r) => {
    const at = r.int(L.headerEnd);
    const n = r.range(1, 16);
    const insert = r.chance(0.5);
    const bytes = insert ? splice(L.buf, at, at, Buffer.from(Array.from({ length: n }, () => r.int(256)))) : splice(L.buf, at, Math.min(at + n, L.size));
    return { bytes, note: `${n} bytes ${insert ? "inserted" : "deleted"} at ${at}` };
  },
  "bytes.data": (L, r) => {
    if (L.dataOffset >= L.size) return mutations["bytes.header"](L, r);
    const out = Buffer.from(L.buf);
    const at = L.dataOffset + r.int(L.size - L.dataOffset);
    const n = Math.min(r.range(1, 4096), L.size - at);
    const fill = r.pick([0xff, 0x7f, 0x00, -1]);
    for (let i = 0; i < n; i++) out[at + i] = fill === -1 ? r.int(256) : fill;
    return { bytes: out, note: `${n} data bytes at ${at} set to ${fill === -1 ? "noise" : fill}` };
  },
  "stacked": (L, r) => {
    // Two mutations in a row, the second aimed at the first one's output where it still maps.
    const first = runMutation(r.pick(SINGLE_MUTATIONS), L, r);
    let layout;
    try {
      layout = mapGguf(first.bytes, L.typeInfo);
    } catch {
      return { bytes: first.bytes, note: first.note };
    }
    const second = runMutation(r.pick(SINGLE_MUTATIONS), layout, r);
    return { bytes: second.bytes, note: `${first.note}; then ${second.note}` };
  },
};

const SINGLE_MUTATIONS = Object.keys(mutations).filter((name) => name !== "stacked");
/** Every mutation strategy's name. */
export const STRATEGIES = Object.keys(mutations);

/** Exact data size of a tensor from its shape and type (`typeInfo`: lib/gguf/types.ts's ggmlTypeInfo). */
function tensorBytes(t, typeInfo) {
  const info = typeInfo(t.type);
  if (!info) return null;
  const elements = t.dims.reduce((a, b) => a * b, 1);
  return (elements / info.blockSize) * info.typeSize;
}

function runMutation(name, layout, r) {
  const result = mutations[name](layout, r);
  return { bytes: result.bytes, note: `${name}: ${result.note}` };
}

// ---------------------------------------------------------------------------------------------
// Seed files.

function corpusFiles(which) {
  const models = resolve(process.env.LLAMA_NAPI_MODELS ?? join(root, "..", "shared", "models"));
  const vocabs = join(root, "vendor", "llama.cpp", "models");
  const stories = { path: join(models, "stories260K.gguf"), weight: 5, vocabOnly: false };
  if (which === "stories260K") return [stories];
  const tiny = { path: join(models, "llama-2-tiny-random.gguf"), weight: 2, vocabOnly: false };
  if (which === "models") return [stories, tiny];
  // Tokenizer-only files that no model on disk has, generated in memory by scripts/vocab-seeds.mjs:
  // UGM (T5, with a precompiled_charsmap), RWKV and PLaMo-2 vocabularies. (The path is where
  // `node scripts/vocab-seeds.mjs` writes them out; it need not exist.)
  const generated = vocabSeeds().map((seed) => ({ path: join(SEED_DIR, `ggml-vocab-${seed.name}.gguf`), bytes: seed.bytes, weight: 0.3, vocabOnly: true }));
  if (which === "generated-vocabs") return generated;
  // Tokenizer-only files: SPM, BPE (several pre-tokenizers) and WPM vocabularies.
  // (Each loads in 40-180 ms; the 250k-token ones take seconds and are left out.)
  const vocabNames = ["llama-spm", "bert-bge", "phi-3", "gpt-2", "deepseek-coder", "refact", "baichuan"];
  const vocabFiles = vocabNames.map((name) => ({ path: join(vocabs, `ggml-vocab-${name}.gguf`), weight: 0.3, vocabOnly: true }));
  return [stories, tiny, ...vocabFiles, ...generated];
}

/**
 * The seed files, mapped: "stories260K", "models" (both test models), "generated-vocabs" (the
 * UGM, RWKV and PLaMo-2 vocabularies of scripts/vocab-seeds.mjs) or "all" (with tokenizer-only
 * files of every vocabulary type). `typeInfo` is lib/gguf/types.ts's ggmlTypeInfo.
 */
export function loadCorpus(which, typeInfo) {
  return corpusFiles(which).map(({ bytes, ...entry }) => {
    if (bytes === undefined && !existsSync(entry.path)) throw new Error(`fuzz seed file missing: ${entry.path}`);
    const buf = bytes ?? readFileSync(entry.path);
    return { ...entry, name: basename(entry.path, ".gguf"), layout: mapGguf(buf, typeInfo) };
  });
}

function pickSeedFile(corpus, r) {
  const total = corpus.reduce((sum, c) => sum + c.weight, 0);
  let x = r.next() * total;
  for (const c of corpus) {
    x -= c.weight;
    if (x < 0) return c;
  }
  return corpus[corpus.length - 1];
}

/** Case `index` of run `seed`: the same bytes every time. */
export function makeCase(corpus, seed, index) {
  const r = new Random(seed, index);
  const file = pickSeedFile(corpus, r);
  const name = r.chance(0.1) ? "stacked" : r.pick(SINGLE_MUTATIONS);
  const { bytes, note } = runMutation(name, file.layout, r);
  // Full models are sometimes loaded vocabulary-only or read instead of mapped: other paths
  // through llama.cpp.
  const vocabOnly = file.vocabOnly || r.chance(0.15);
  const useMmap = !r.chance(0.2);
  return { index, seedFile: file.name, strategy: name, note, load: { vocabOnly, useMmap }, bytes };
}

