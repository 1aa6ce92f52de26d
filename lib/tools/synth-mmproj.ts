/**
 * Synthesizes multimodal projector GGUFs ("mmproj" files) with random weights, in layouts that
 * llama.cpp's clip.cpp loads: LLaVA-1.5's (a CLIP ViT and an MLP) for images, Ultravox's (a Whisper
 * encoder and a SwiGLU over stacked frames) for audio. Tests feed images and audio to a small
 * language model through them without downloading a real projector.
 */
import { GgmlType, type GgufKv } from "../gguf/types.js";
import { writeGguf, type GgufTensorSource } from "../gguf/writer.js";
import { RandomStream } from "./synth.js";

export type ProjectorKind = "vision" | "audio";

export interface SynthesizeProjectorOptions {
  outPath: string;
  /** Width of the embeddings the projector produces: the language model's n_embd. */
  nEmbdOut: number;
  kind: ProjectorKind;
  /** Same seed, kind and width give the same file. Default 0. */
  seed?: number;
}

export interface SynthesizeProjectorResult {
  path: string;
  fileSize: number;
  tensorCount: number;
}

/** The vision encoder: a CLIP ViT 32 wide (LLaVA-1.5's is 1024). */
export const VISION_ENCODER = Object.freeze({
  imageSize: 56,
  patchSize: 14,
  nEmbd: 32,
  nHead: 4,
  nFf: 64,
  // clip.cpp's LLaVA graph takes the penultimate layer's output, as LLaVA-1.5 does: of two layers,
  // the first runs and the second is loaded only.
  nLayer: 2,
  layerNormEps: 1e-5,
  // OpenAI CLIP's normalization, which LLaVA-1.5's projector file carries.
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
});

/** The number of embeddings an image becomes: one per patch (mtmd resizes every image to imageSize square). */
export const VISION_IMAGE_TOKENS = (VISION_ENCODER.imageSize / VISION_ENCODER.patchSize) ** 2;

/** The audio encoder: a Whisper encoder 32 wide (Whisper large's is 1280). */
export const AUDIO_ENCODER = Object.freeze({
  nMelBins: 80,
  nEmbd: 32,
  nHead: 4,
  nFf: 64,
  nLayer: 2,
  layerNormEps: 1e-5,
  // Whisper's 30-second window: 3000 mel frames, halved by the second convolution.
  nPositions: 1500,
  // Encoder frames stacked into one embedding. Not Ultravox's own 8: the pinned clip.cpp expects
  // 3000 / 8 / 2 = 187 embeddings (rounded down) where its graph makes ceil(1500 / 8) = 188, and
  // aborts. The two agree for factors that divide 1500.
  stackFactor: 10,
});

/** The number of embeddings a clip of up to 30 seconds becomes (mtmd pads audio to Whisper's 30-second window). */
export const AUDIO_CLIP_TOKENS = AUDIO_ENCODER.nPositions / AUDIO_ENCODER.stackFactor;

/** How a tensor is filled: a constant (the norms' weights and biases), or uniform values of a standard deviation. */
type Fill = { constant: number } | { std: number };

interface TensorSpec {
  name: string;
  /** ggml order: ne[0] (the input width of a matrix) first. */
  dims: number[];
  fill: Fill;
}

const ONES: Fill = { constant: 1 };
const ZEROS: Fill = { constant: 0 };
// Biases and learned embeddings: small, as a trained model's start out.
const SMALL: Fill = { std: 0.02 };

/**
 * A matrix of `nIn` → `nOut` whose outputs keep the variance of its inputs. Activations stay near
 * unit RMS through every layer, so the projector's outputs come out three times as large as
 * stories260K's token embeddings (RMS 0.3): the picture or sound, not only the text around it,
 * steers the model.
 */
function linear(name: string, nIn: number, nOut: number): TensorSpec {
  return { name, dims: [nIn, nOut], fill: { std: 1 / Math.sqrt(nIn) } };
}

function layerNorm(prefix: string, width: number): TensorSpec[] {
  return [
    { name: `${prefix}.weight`, dims: [width], fill: ONES },
    { name: `${prefix}.bias`, dims: [width], fill: ZEROS },
  ];
}

/** One pre-norm transformer block of clip.cpp's shared ViT layout (`v.blk.N` or `a.blk.N`). */
function encoderBlock(prefix: string, nEmbd: number, nFf: number, keyBias: boolean): TensorSpec[] {
  const bias = (name: string, width: number): TensorSpec => ({ name: `${prefix}.${name}.bias`, dims: [width], fill: SMALL });
  return [
    ...layerNorm(`${prefix}.ln1`, nEmbd),
    linear(`${prefix}.attn_q.weight`, nEmbd, nEmbd),
    bias("attn_q", nEmbd),
    linear(`${prefix}.attn_k.weight`, nEmbd, nEmbd),
    ...(keyBias ? [bias("attn_k", nEmbd)] : []),
    linear(`${prefix}.attn_v.weight`, nEmbd, nEmbd),
    bias("attn_v", nEmbd),
    linear(`${prefix}.attn_out.weight`, nEmbd, nEmbd),
    bias("attn_out", nEmbd),
    ...layerNorm(`${prefix}.ln2`, nEmbd),
    // clip.cpp swaps up and down of LLaVA files whose ffn_down is n_embd wide: ffn_down must be n_ff → n_embd.
    linear(`${prefix}.ffn_up.weight`, nEmbd, nFf),
    bias("ffn_up", nFf),
    linear(`${prefix}.ffn_down.weight`, nFf, nEmbd),
    bias("ffn_down", nEmbd),
  ];
}

function visionTensors(nEmbdOut: number): TensorSpec[] {
  const { patchSize, nEmbd, nFf, nLayer } = VISION_ENCODER;
  const nPositions = VISION_IMAGE_TOKENS + 1; // the patches and the class embedding
  const patchInputs = 3 * patchSize * patchSize;
  const blocks = Array.from({ length: nLayer }, (_, i) => encoderBlock(`v.blk.${i}`, nEmbd, nFf, true));
  return [
    // Conv2d kernel [out, in, kh, kw] in PyTorch; ggml reverses it. No bias, as in CLIP.
    { name: "v.patch_embd.weight", dims: [patchSize, patchSize, 3, nEmbd], fill: { std: 1 / Math.sqrt(patchInputs) } },
    { name: "v.class_embd", dims: [nEmbd], fill: SMALL },
    { name: "v.position_embd.weight", dims: [nEmbd, nPositions], fill: SMALL },
    ...layerNorm("v.pre_ln", nEmbd),
    ...blocks.flat(),
    // LLaVA-1.5's projector: Linear, GELU, Linear, as mm.0 and mm.2 (mm.1 is the GELU).
    linear("mm.0.weight", nEmbd, nEmbdOut),
    { name: "mm.0.bias", dims: [nEmbdOut], fill: SMALL },
    linear("mm.2.weight", nEmbdOut, nEmbdOut),
    { name: "mm.2.bias", dims: [nEmbdOut], fill: SMALL },
  ];
}

function audioTensors(nEmbdOut: number): TensorSpec[] {
  const { nMelBins, nEmbd, nFf, nLayer, nPositions, stackFactor } = AUDIO_ENCODER;
  const stacked = nEmbd * stackFactor;
  const blocks = Array.from({ length: nLayer }, (_, i) => encoderBlock(`a.blk.${i}`, nEmbd, nFf, false));
  return [
    // Conv1d kernels [out, in, k] in PyTorch, reversed; the biases [out, 1] so that they add per channel.
    { name: "a.conv1d.1.weight", dims: [3, nMelBins, nEmbd], fill: { std: 1 / Math.sqrt(3 * nMelBins) } },
    { name: "a.conv1d.1.bias", dims: [1, nEmbd], fill: SMALL },
    { name: "a.conv1d.2.weight", dims: [3, nEmbd, nEmbd], fill: { std: 1 / Math.sqrt(3 * nEmbd) } },
    { name: "a.conv1d.2.bias", dims: [1, nEmbd], fill: SMALL },
    { name: "a.position_embd.weight", dims: [nEmbd, nPositions], fill: SMALL },
    // Whisper's blocks have no bias on the keys.
    ...blocks.flat(),
    ...layerNorm("a.post_ln", nEmbd),
    // Ultravox's projector: RMS norm, Linear to twice the width, SwiGLU, RMS norm, Linear.
    { name: "mm.a.norm_pre.weight", dims: [stacked], fill: ONES },
    linear("mm.a.mlp.1.weight", stacked, 2 * nEmbdOut),
    { name: "mm.a.norm_mid.weight", dims: [nEmbdOut], fill: ONES },
    linear("mm.a.mlp.2.weight", nEmbdOut, nEmbdOut),
  ];
}

/** The keys a vision and an audio encoder share, under clip.vision. or clip.audio. */
function encoderMetadata(prefix: string, e: { nEmbd: number; nFf: number; nLayer: number; nHead: number; layerNormEps: number }, nEmbdOut: number): GgufKv[] {
  const u32 = (key: string, value: number): GgufKv => ({ key: `${prefix}.${key}`, type: "uint32", value });
  return [
    u32("embedding_length", e.nEmbd),
    u32("feed_forward_length", e.nFf),
    u32("block_count", e.nLayer),
    u32("attention.head_count", e.nHead),
    { key: `${prefix}.attention.layer_norm_epsilon`, type: "float32", value: e.layerNormEps },
    u32("projection_dim", nEmbdOut),
  ];
}

function visionMetadata(nEmbdOut: number): GgufKv[] {
  const e = VISION_ENCODER;
  const u32 = (key: string, value: number): GgufKv => ({ key: `clip.vision.${key}`, type: "uint32", value });
  const floats = (key: string, items: number[]): GgufKv => ({ key: `clip.vision.${key}`, type: "array", value: { itemType: "float32", items } });
  return [
    { key: "clip.has_vision_encoder", type: "bool", value: true },
    { key: "clip.projector_type", type: "string", value: "mlp" },
    // CLIP's quick GELU inside the encoder (the projector's GELU is fixed).
    { key: "clip.use_gelu", type: "bool", value: false },
    u32("image_size", e.imageSize),
    u32("patch_size", e.patchSize),
    ...encoderMetadata("clip.vision", e, nEmbdOut),
    floats("image_mean", [...e.imageMean]),
    floats("image_std", [...e.imageStd]),
  ];
}

function audioMetadata(nEmbdOut: number): GgufKv[] {
  const e = AUDIO_ENCODER;
  return [
    { key: "clip.has_audio_encoder", type: "bool", value: true },
    { key: "clip.projector_type", type: "string", value: "ultravox" },
    { key: "clip.audio.num_mel_bins", type: "uint32", value: e.nMelBins },
    ...encoderMetadata("clip.audio", e, nEmbdOut),
    { key: "clip.audio.projector.stack_factor", type: "uint32", value: e.stackFactor },
  ];
}

function tensorSource(spec: TensorSpec, seed: number): GgufTensorSource {
  const random = new RandomStream(seed, spec.name);
  const { fill } = spec;
  return {
    name: spec.name,
    dims: spec.dims,
    type: GgmlType.F32,
    fill(chunk) {
      const values = new Float32Array(chunk.buffer, chunk.byteOffset, chunk.length / 4);
      // Uniform on [-a, a] has standard deviation a/sqrt(3).
      if ("std" in fill) random.fillUniform(values, values.length, fill.std * Math.sqrt(3));
      else values.fill(fill.constant);
    },
  };
}

/** Writes a projector GGUF (all tensors F32) for a language model `nEmbdOut` wide. */
export async function synthesizeProjector(options: SynthesizeProjectorOptions): Promise<SynthesizeProjectorResult> {
  const { kind, nEmbdOut } = options;
  if (kind !== "vision" && kind !== "audio") throw new RangeError(`kind must be "vision" or "audio", got ${JSON.stringify(kind)}`);
  if (!Number.isSafeInteger(nEmbdOut) || nEmbdOut <= 0) throw new RangeError(`nEmbdOut must be a positive integer, got ${nEmbdOut}`);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);

  const specs = kind === "vision" ? visionTensors(nEmbdOut) : audioTensors(nEmbdOut);
  const tensors = specs.map((spec) => tensorSource(spec, seed));
  const written = await writeGguf(options.outPath, {
    kvs: [
      { key: "general.architecture", type: "string", value: "clip" },
      { key: "general.name", type: "string", value: `synthetic ${kind} projector` },
      { key: "general.file_type", type: "uint32", value: 0 },
      ...(kind === "vision" ? visionMetadata(nEmbdOut) : audioMetadata(nEmbdOut)),
    ],
    tensors,
  });
  return { path: options.outPath, fileSize: written.fileSize, tensorCount: tensors.length };
}
