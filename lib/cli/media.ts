// --image and --audio for complete and chat: files read here (the CLI's user named them) and
// handed on as a completion's media or a chat message's content parts, before the text, as
// llama-mtmd-cli puts them.
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { MEDIA_MARKER } from "../completion/media.js";
import type { ChatContentPart } from "../completion/types.js";
import type { Flags, OptionSpecs } from "./args.js";
import { UsageError } from "./args.js";

export const mediaOptions: OptionSpecs = {
  image: { type: "string", multiple: true, value: "FILE", help: "an image for the model (needs --mmproj); repeatable" },
  audio: { type: "string", multiple: true, value: "FILE", help: "a WAV, MP3 or FLAC file for the model (needs --mmproj); repeatable" },
};

/** The files of --image and --audio, images first, each as its bytes and as a chat content part. */
export async function mediaFrom(flags: Flags): Promise<Array<{ bytes: Buffer; part: ChatContentPart }>> {
  const read = async (path: string) =>
    readFile(path).catch((err: Error) => {
      throw new UsageError(`cannot read ${path}: ${err.message}`);
    });
  const images = await Promise.all(
    flags.list("image").map(async (path) => {
      const bytes = await read(path);
      return { bytes, part: { type: "image_url", image_url: { url: `data:application/octet-stream;base64,${bytes.toString("base64")}` } } as ChatContentPart };
    }),
  );
  const sounds = await Promise.all(
    flags.list("audio").map(async (path) => {
      const format = extname(path).slice(1).toLowerCase();
      if (!["wav", "mp3", "flac"].includes(format)) throw new UsageError(`--audio ${path}: a .wav, .mp3 or .flac file`);
      const bytes = await read(path);
      return { bytes, part: { type: "input_audio", input_audio: { data: bytes.toString("base64"), format } } as ChatContentPart };
    }),
  );
  return [...images, ...sounds];
}

/** A prompt with a media marker per item: the prompt's own markers, else markers before it. */
export function withMarkers(prompt: string, count: number): string {
  if (count === 0 || prompt.includes(MEDIA_MARKER)) return prompt;
  return MEDIA_MARKER.repeat(count) + prompt;
}
