// Images and audio in a request: a chat's content parts (OpenAI's image_url and input_audio) become
// the projector's media marker in the rendered prompt, as llama-server renders them, and their
// files are read (data: URLs; local files only where allowed; remote URLs only through a fetch
// function given) and tokenized with the prompt by llama.cpp's mtmd before the generation runs.
import { realpath, readFile } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { LlamaProjector, MediaPrompt } from "../core/projector.js";
import { LlamaError } from "../errors.js";
import type { MediaSource, PendingMedia, Prepared } from "./generation.js";
import type { CompletionMedia, CompletionOptions, MediaAccess } from "./options.js";
import type { ChatContentPart, ChatMessage } from "./types.js";

/** The largest media file read: 100 MiB. */
const MAX_MEDIA_BYTES = 100 * 1024 * 1024;

function invalid(message: string): LlamaError {
  return new LlamaError("INVALID_MEDIA", message);
}

/**
 * A chat's messages with each image or audio part replaced by llama.cpp's media_marker part (as
 * llama-server replaces them: common/chat joins it to the text around it without a newline), and
 * the parts' sources in order; invalid parts are INVALID_ARGUMENT naming them.
 */
export function extractChatMedia(messages: readonly ChatMessage[], marker: string): { messages: ChatMessage[]; sources: MediaSource[] } {
  const sources: MediaSource[] = [];
  // Malformed messages pass as they are: chat-messages.ts names what is wrong with them.
  const out = messages.map((message, m) => {
    if (typeof message !== "object" || message === null || !Array.isArray(message.content)) return message;
    const content = message.content.map((part, p) => {
      const at = `messages[${m}].content[${p}]`;
      const raw = part as unknown as Record<string, Record<string, unknown> | undefined> | null;
      if (raw === null || typeof raw !== "object") return part;
      if (part.type === "image_url") {
        const url = raw.image_url?.url;
        if (typeof url !== "string" || url === "") throw new LlamaError("INVALID_ARGUMENT", `${at}.image_url.url must be a non-empty string`);
        sources.push({ url, name: at });
      } else if (part.type === "input_audio") {
        const { data, format } = raw.input_audio ?? {};
        if (typeof data !== "string" || typeof format !== "string") throw new LlamaError("INVALID_ARGUMENT", `${at}.input_audio must be { data: base64 string, format: string }`);
        sources.push({ audio: data, format, name: at });
      } else {
        return part;
      }
      return { type: "media_marker", text: marker } as unknown as ChatContentPart;
    });
    return { ...message, content };
  });
  return { messages: out, sources };
}

/** A completion's media items as sources. */
export function completionMediaSources(media: readonly CompletionMedia[]): MediaSource[] {
  return media.map((item, i) => {
    const name = `options.media[${i}]`;
    if (item instanceof Uint8Array) return { bytes: item, name };
    if (typeof item === "object" && item !== null && (item.data instanceof Uint8Array || typeof item.data === "string")) {
      return { bytes: typeof item.data === "string" ? Buffer.from(item.data, "base64") : item.data, name };
    }
    throw new TypeError(`options.media[${i}] must be a Uint8Array or { data: Uint8Array | base64 string, type?: string }`);
  });
}

async function readLocal(path: string, access: MediaAccess, name: string): Promise<Uint8Array> {
  const allowed = access.allowLocalMedia ?? false;
  if (allowed === false) throw invalid(`${name} is a local file, and local files are not allowed (allowLocalMedia)`);
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    throw invalid(`${name}: no such file`);
  }
  if (typeof allowed === "string") {
    // Links and ".." are resolved first, so that neither leads out of the folder.
    const root = await realpath(allowed).catch(() => allowed);
    const inside = relative(root, real);
    if (inside === "" || inside.startsWith(`..${sep}`) || inside === ".." || isAbsolute(inside)) throw invalid(`${name} is outside the folder local media may come from`);
  }
  const bytes = await readFile(real).catch((err: Error) => {
    throw invalid(`${name} cannot be read: ${err.message}`);
  });
  if (bytes.length > MAX_MEDIA_BYTES) throw invalid(`${name} is over ${MAX_MEDIA_BYTES / 1024 / 1024} MiB`);
  return bytes;
}

/** The bytes of one source. */
async function readSource(source: MediaSource, access: MediaAccess, signal: AbortSignal | undefined): Promise<Uint8Array> {
  const name = source.name;
  if ("bytes" in source) return source.bytes;
  if ("audio" in source) {
    if (!["wav", "mp3", "flac"].includes(source.format)) throw invalid(`${name}: audio format ${JSON.stringify(source.format)} is not wav, mp3 or flac`);
    return Buffer.from(source.audio, "base64");
  }
  const url = source.url;
  const data = /^data:([^,]*?)(;base64)?,(.*)$/s.exec(url);
  if (data) return data[2] ? Buffer.from(data[3]!, "base64") : Buffer.from(decodeURIComponent(data[3]!), "latin1");
  if (/^https?:\/\//i.test(url)) {
    if (access.fetchMedia === undefined) throw invalid(`${name} is a remote URL: pass fetchMedia to read remote media`);
    return access.fetchMedia(url, signal);
  }
  // As llama-server's --media-path: file://photo.png is relative to the allowed folder.
  const folder = typeof access.allowLocalMedia === "string" ? access.allowLocalMedia : undefined;
  if (url.startsWith("file:///")) return readLocal(fileURLToPath(url), access, name);
  if (url.startsWith("file://")) return readLocal(folder === undefined ? url.slice(7) : join(folder, url.slice(7)), access, name);
  if (isAbsolute(url) || url.startsWith(".")) return readLocal(url, access, name);
  // llama-server also takes the bare base64 of a file.
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(url) && url.length % 4 === 0) return Buffer.from(url, "base64");
  throw invalid(`${name} is no data:, file:// or http(s) URL`);
}

/**
 * Reads a request's media and tokenizes its prompt with them; the caller disposes the prompt.
 * CONTEXT_FULL when text and media take more than `nCtx` positions.
 */
export async function tokenizeWithMedia(
  projector: LlamaProjector | null,
  pending: PendingMedia,
  access: MediaAccess,
  nCtx: number,
  signal: AbortSignal | undefined,
): Promise<MediaPrompt> {
  if (projector === null) throw invalid("the request has images or audio, but the model has no projector: load it with mmprojPath");
  const media = await Promise.all(pending.sources.map((source) => readSource(source, access, signal)));
  // Checked here first, so that an error names the part or option it came from.
  media.forEach((bytes, i) => projector.checkMedia(pending.sources[i]!.name, bytes));
  if (signal?.aborted) throw new LlamaError("ABORTED", "the request was aborted while its media were read");
  const prompt = await projector.tokenize(pending.text, media, { addSpecial: pending.addSpecial, parseSpecial: true });
  if (prompt.tokens.length > nCtx) {
    prompt.dispose();
    throw new LlamaError("CONTEXT_FULL", `the prompt with its media takes ${prompt.tokens.length} positions but the context holds ${nCtx}`);
  }
  if ((prompt.tokens.at(-1) ?? -1) < 0) {
    prompt.dispose();
    throw new LlamaError("INVALID_ARGUMENT", "the prompt must end with text after its last media item");
  }
  return prompt;
}

/**
 * Runs a prepared request whose media are pending: reads and tokenizes them into its prompt first,
 * and frees the preprocessed media once the generation is over.
 */
export async function runWithMedia<T>(
  projector: LlamaProjector | null,
  access: MediaAccess,
  nCtx: number,
  prepared: Prepared,
  run: () => Promise<T>,
): Promise<T> {
  const prompt = await tokenizeWithMedia(projector, prepared.media!, access, nCtx, prepared.signal);
  prepared.request.prompt = prompt.tokens;
  prepared.request.media = { prompt, chunks: prompt.media };
  try {
    return await run();
  } finally {
    prompt.dispose();
  }
}

/** mtmd's media marker (the projector's own is the same). */
export const MEDIA_MARKER = "<__media__>";

/** A request's pending media; a context shift could cut through them, so it is refused. */
export function pendingMedia(text: string, addSpecial: boolean, sources: MediaSource[], contextShift: unknown): PendingMedia {
  if (contextShift !== null && contextShift !== undefined) throw new LlamaError("INVALID_ARGUMENT", "a request with images or audio cannot shift its context");
  return { text, addSpecial, sources };
}

/** A completion's pending media: its prompt is text, with a marker per item. */
export function completionMedia(prompt: unknown, o: CompletionOptions, contextShift: unknown): PendingMedia {
  if (typeof prompt !== "string") throw new TypeError("a prompt with media must be a string holding a media marker per item");
  if ((o.suffix ?? null) !== null || o.truncate) throw new LlamaError("INVALID_ARGUMENT", "a prompt with media takes no suffix and is not truncated");
  return pendingMedia(prompt, true, completionMediaSources(o.media ?? []), contextShift);
}
