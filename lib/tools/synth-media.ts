/**
 * Small images (PNG, BMP) and sounds (WAV) made from a seed, and broken files, for tests of
 * multimodal input. Written with node:zlib only: no image library to install.
 */
import { deflateSync } from "node:zlib";
import { RandomStream } from "./synth.js";

/** Pixels as 8-bit RGB, row by row from the top. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

function checkSize(width: number, height: number): void {
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isSafeInteger(value) || value <= 0 || value > 0x7fffffff) throw new RangeError(`${name} must be a positive 31-bit integer, got ${value}`);
  }
}

/**
 * A `width`×`height` image from `seed`: a random colour per 4×4-pixel block, so that a downscaled
 * copy still differs from one seed to the next.
 */
export function seededImage(width: number, height: number, seed: number): RgbImage {
  checkSize(width, height);
  const blocksX = Math.ceil(width / 4);
  const blockColours = new Float32Array(blocksX * Math.ceil(height / 4) * 3);
  new RandomStream(seed, "image").fillUniform(blockColours, blockColours.length, 0.5);
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const block = (Math.floor(y / 4) * blocksX + Math.floor(x / 4)) * 3;
      for (let c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = Math.round((blockColours[block + c]! + 0.5) * 255);
    }
  }
  return { width, height, rgb };
}

const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/** CRC-32 (ISO-HDLC), as PNG chunks carry it. */
export function crc32(bytes: Uint8Array): number {
  let crc = -1;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const chunk = Buffer.alloc(12 + data.length);
  chunk.writeUInt32BE(data.length, 0);
  chunk.write(type, 4, "latin1");
  chunk.set(data, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
  return chunk;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function pngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits per sample, truecolour, deflate, adaptive filters, no interlace
  return pngChunk("IHDR", ihdr);
}

/** An 8-bit RGB PNG, every row unfiltered. */
export function encodePng(image: RgbImage): Buffer {
  const { width, height, rgb } = image;
  checkSize(width, height);
  if (rgb.length !== width * height * 3) throw new RangeError(`rgb holds ${rgb.length} bytes, not ${width}×${height}×3`);
  const rowBytes = width * 3;
  const scanlines = Buffer.alloc(height * (rowBytes + 1)); // each row starts with filter type 0
  for (let y = 0; y < height; y++) scanlines.set(rgb.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  return Buffer.concat([PNG_SIGNATURE, pngHeader(width, height), pngChunk("IDAT", deflateSync(scanlines)), pngChunk("IEND", new Uint8Array(0))]);
}

/** A 24-bit BMP (BITMAPINFOHEADER, rows bottom-up, each padded to 4 bytes). */
export function encodeBmp(image: RgbImage): Buffer {
  const { width, height, rgb } = image;
  checkSize(width, height);
  if (rgb.length !== width * height * 3) throw new RangeError(`rgb holds ${rgb.length} bytes, not ${width}×${height}×3`);
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const dataOffset = 14 + 40;
  const bmp = Buffer.alloc(dataOffset + rowBytes * height);
  bmp.write("BM", 0, "latin1");
  bmp.writeUInt32LE(bmp.length, 2);
  bmp.writeUInt32LE(dataOffset, 10);
  bmp.writeUInt32LE(40, 14);
  bmp.writeInt32LE(width, 18);
  bmp.writeInt32LE(height, 22); // positive: bottom-up
  bmp.writeUInt16LE(1, 26); // planes
  bmp.writeUInt16LE(24, 28); // bits per pixel; compression (30) stays 0, BI_RGB
  bmp.writeUInt32LE(rowBytes * height, 34);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (height - 1 - y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const source = (y * width + x) * 3;
      bmp[row + x * 3] = rgb[source + 2]!; // BGR
      bmp[row + x * 3 + 1] = rgb[source + 1]!;
      bmp[row + x * 3 + 2] = rgb[source]!;
    }
  }
  return bmp;
}

/** `png` cut off in the middle of its image data: the signature and header are intact, the pixels are not. */
export function truncatedPng(png: Buffer): Buffer {
  const idat = png.indexOf("IDAT", PNG_SIGNATURE.length, "latin1");
  if (idat < 0) throw new RangeError("not a PNG with image data");
  const dataLength = png.readUInt32BE(idat - 4);
  return Buffer.from(png.subarray(0, idat + 4 + Math.max(1, Math.floor(dataLength / 2))));
}

/**
 * A well-formed PNG that declares `width`×`height` (default 20000×20000, 1.2 GB of RGB) but holds
 * the pixels of one row only: a decoder that trusts the header allocates the whole image first.
 */
export function hugePng(width = 20000, height = 20000): Buffer {
  checkSize(width, height);
  const oneRow = Buffer.alloc(width * 3 + 1);
  return Buffer.concat([PNG_SIGNATURE, pngHeader(width, height), pngChunk("IDAT", deflateSync(oneRow)), pngChunk("IEND", new Uint8Array(0))]);
}

/**
 * `seconds` of sound from `seed` at `sampleRate`: a few sine tones of random pitch and loudness
 * that change every quarter second, so that different seeds differ across the spectrum and in time.
 */
export function seededSound(seconds: number, seed: number, sampleRate = 16000): Float32Array {
  if (!(seconds > 0 && Number.isFinite(seconds))) throw new RangeError(`seconds must be positive, got ${seconds}`);
  const samples = new Float32Array(Math.round(seconds * sampleRate));
  const segment = Math.round(sampleRate / 4);
  const tones = 3;
  const params = new Float32Array(Math.ceil(samples.length / segment) * tones * 2);
  new RandomStream(seed, "sound").fillUniform(params, params.length, 0.5);
  for (let i = 0; i < samples.length; i++) {
    const base = Math.floor(i / segment) * tones * 2;
    let value = 0;
    for (let t = 0; t < tones; t++) {
      const frequency = 100 + (params[base + 2 * t]! + 0.5) * 3900; // within 16 kHz audio's band
      const amplitude = (params[base + 2 * t + 1]! + 0.5) / tones;
      value += amplitude * Math.sin((2 * Math.PI * frequency * i) / sampleRate);
    }
    samples[i] = 0.8 * value;
  }
  return samples;
}

/** A mono 16-bit PCM WAV of `samples` (clamped to [-1, 1]). */
export function encodeWav(samples: Float32Array, sampleRate = 16000): Buffer {
  if (!Number.isSafeInteger(sampleRate) || sampleRate <= 0) throw new RangeError(`sampleRate must be a positive integer, got ${sampleRate}`);
  const dataBytes = samples.length * 2;
  const wav = Buffer.alloc(44 + dataBytes);
  wav.write("RIFF", 0, "latin1");
  wav.writeUInt32LE(36 + dataBytes, 4);
  wav.write("WAVEfmt ", 8, "latin1");
  wav.writeUInt32LE(16, 16); // fmt chunk size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(sampleRate, 24);
  wav.writeUInt32LE(sampleRate * 2, 28); // bytes per second
  wav.writeUInt16LE(2, 32); // bytes per frame
  wav.writeUInt16LE(16, 34); // bits per sample
  wav.write("data", 36, "latin1");
  wav.writeUInt32LE(dataBytes, 40);
  for (let i = 0; i < samples.length; i++) wav.writeInt16LE(Math.round(Math.max(-1, Math.min(1, samples[i]!)) * 32767), 44 + 2 * i);
  return wav;
}
