// What a media file is, read from its first bytes before llama.cpp decodes it: the formats mtmd
// reads (stb_image's images, miniaudio's audio), and an image's size, so that a file declaring
// 20000×20000 pixels is refused instead of allocated.
import { LlamaError } from "../errors.js";

export type MediaKind = "image" | "audio";

/** The most pixels an image may declare: 50 million, about 8K by 6K. */
export const MAX_IMAGE_PIXELS = 50_000_000;
/** The longest side an image may declare. */
export const MAX_IMAGE_SIDE = 16_384;

export interface MediaFacts {
  kind: MediaKind;
  format: "png" | "jpeg" | "gif" | "bmp" | "wav" | "mp3" | "flac";
  /** An image's declared size (unknown for a JPEG whose size marker was not found). */
  width?: number;
  height?: number;
}

const ascii = (bytes: Uint8Array, at: number, text: string): boolean => [...text].every((c, i) => bytes[at + i] === c.charCodeAt(0));

function jpegSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 2; at + 9 < bytes.length; ) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1]!;
    // Start-of-frame markers (not DHT, JPG or DAC) carry the height, then the width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: view.getUint16(at + 5), width: view.getUint16(at + 7) };
    }
    at += 2 + view.getUint16(at + 2);
  }
  return undefined;
}

function sniff(bytes: Uint8Array): MediaFacts | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 24 && ascii(bytes, 0, "\x89PNG\r\n\x1a\n")) return { kind: "image", format: "png", width: view.getUint32(16), height: view.getUint32(20) };
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return { kind: "image", format: "jpeg", ...jpegSize(bytes) };
  if (bytes.length >= 10 && ascii(bytes, 0, "GIF8")) return { kind: "image", format: "gif", width: view.getUint16(6, true), height: view.getUint16(8, true) };
  if (bytes.length >= 26 && ascii(bytes, 0, "BM")) return { kind: "image", format: "bmp", width: Math.abs(view.getInt32(18, true)), height: Math.abs(view.getInt32(22, true)) };
  if (bytes.length >= 12 && ascii(bytes, 0, "RIFF") && ascii(bytes, 8, "WAVE")) return { kind: "audio", format: "wav" };
  if (bytes.length >= 4 && ascii(bytes, 0, "fLaC")) return { kind: "audio", format: "flac" };
  if (bytes.length >= 3 && (ascii(bytes, 0, "ID3") || (bytes[0] === 0xff && (bytes[1]! & 0xe0) === 0xe0))) return { kind: "audio", format: "mp3" };
  return undefined;
}

/** The kind and format of `bytes` (named `name` in errors), or INVALID_MEDIA. */
export function mediaFacts(name: string, bytes: Uint8Array): MediaFacts {
  const facts = sniff(bytes);
  if (facts === undefined) {
    const webp = bytes.length >= 12 && ascii(bytes, 0, "RIFF") && ascii(bytes, 8, "WEBP");
    const what = webp ? "a WebP image, which this build cannot decode (stb_image reads PNG, JPEG, GIF, BMP)" : "no image (PNG, JPEG, GIF, BMP) or audio (WAV, MP3, FLAC) file";
    throw new LlamaError("INVALID_MEDIA", `${name} is ${what}`);
  }
  const { width, height } = facts;
  if (width !== undefined && height !== undefined) {
    if (width === 0 || height === 0) throw new LlamaError("INVALID_MEDIA", `${name} is an image of ${width}×${height} pixels`);
    if (width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || width * height > MAX_IMAGE_PIXELS) {
      throw new LlamaError("INVALID_MEDIA", `${name} is ${width}×${height} pixels: at most ${MAX_IMAGE_SIDE} a side and ${MAX_IMAGE_PIXELS / 1e6} million in all`);
    }
  }
  return facts;
}
