// What names a model on the Hub: `hf:` URIs and { repoId, filename } specs, and how a file pattern
// (an exact path, a glob, a quantization tag) picks one model among a repository's files.
import { LlamaError } from "../errors.js";

/** A model on the Hub: a repository, and which of its GGUFs. */
export interface HubModelSpec {
  /** "owner/name". */
  repoId: string;
  /** A path in the repository, or a glob of one ("*Q4_K_M.gguf"); exclusive with `quant`. */
  filename?: string;
  /** A quantization tag ("Q4_K_M", any case): the GGUF whose name carries it. */
  quant?: string;
  /** A branch, tag or commit. Default "main". */
  revision?: string;
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/** Checks "owner/name" as the Hub spells repositories; a TypeError names what is wrong. */
export function checkRepoId(name: string, repoId: string): string {
  if (!REPO_ID.test(repoId) || repoId.includes("..") || repoId.includes("--")) {
    throw new TypeError(`${name} must be a Hub repository as "owner/name", got ${JSON.stringify(repoId)}`);
  }
  return repoId;
}

/** Whether a model path names the Hub rather than a local file. */
export function isHubUri(path: string): boolean {
  return path.startsWith("hf:");
}

/**
 * Parses `hf:owner/repo/path/in/repo.gguf` (a path, which may be a glob) or `hf:owner/repo:QUANT`
 * (a quantization tag) or `hf:owner/repo` (the repository's one GGUF, else its Q4_K_M).
 */
export function parseHubUri(uri: string): HubModelSpec {
  const rest = uri.slice("hf:".length).replace(/^\/\//, "");
  const colon = rest.indexOf(":");
  const [repoPart, quant] = colon >= 0 ? [rest.slice(0, colon), rest.slice(colon + 1)] : [rest, undefined];
  const parts = repoPart.split("/");
  if (parts.length < 2 || parts.some((p) => p === "")) {
    throw new TypeError(`a Hub model is hf:owner/repo/file.gguf or hf:owner/repo:QUANT, got ${JSON.stringify(uri)}`);
  }
  const repoId = checkRepoId("the Hub model's repository", `${parts[0]}/${parts[1]}`);
  const filename = parts.length > 2 ? parts.slice(2).join("/") : undefined;
  if (quant !== undefined && (filename !== undefined || !/^[\w.-]+$/.test(quant))) {
    throw new TypeError(`a Hub model's quantization tag follows the repository (hf:owner/repo:Q4_K_M), got ${JSON.stringify(uri)}`);
  }
  return { repoId, filename, quant };
}

/** A path that stays inside a folder: relative, no "." or ".." segments, no backslashes. */
export function isSafeRepoPath(path: string): boolean {
  return path !== "" && !path.includes("\\") && !path.includes("\0") && path.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

/** A path in a repository (or a revision, which names a file under refs/) must stay inside it. */
export function checkRepoPath(name: string, path: string): string {
  if (!isSafeRepoPath(path)) throw new TypeError(`${name} must be a relative path inside the repository, got ${JSON.stringify(path)}`);
  return path;
}

function globToRegExp(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob.charAt(i);
    if (c === "*") source += ".*";
    else if (c === "?") source += ".";
    else if (c === "[" && glob.indexOf("]", i + 2) > 0) {
      const end = glob.indexOf("]", i + 2);
      const body = glob.slice(i + 1, end);
      source += `[${body.startsWith("!") ? "^" + body.slice(1) : body}]`.replace(/\\/g, "\\\\");
      i = end;
    } else source += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, "s");
}

const SHARD = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

/** The parts of a split GGUF (`-00001-of-00003.gguf`) that `path` belongs to, first first; else [path]. */
export function shardsOf(path: string): string[] {
  const [, stem, , count] = SHARD.exec(path) ?? [];
  if (stem === undefined || count === undefined) return [path];
  return Array.from({ length: Number(count) }, (_, i) => `${stem}-${String(i + 1).padStart(5, "0")}-of-${count}.gguf`);
}

/** The first part of the split GGUF `path` belongs to (it stands for the others); else `path`. */
export function firstShard(path: string): string {
  return shardsOf(path)[0] ?? path;
}

function firstShards(paths: readonly string[]): string[] {
  return [...new Set(paths.map(firstShard))];
}

function isModelGguf(path: string): boolean {
  const base = path.slice(path.lastIndexOf("/") + 1).toLowerCase();
  return base.endsWith(".gguf") && !base.startsWith("mmproj");
}

function carriesQuant(path: string, quant: string): boolean {
  const base = path.slice(path.lastIndexOf("/") + 1).replace(SHARD, "$1.gguf");
  // The tag ends at a "-" or "." (or the name), so Q4_K does not pick Q4_K_M.
  const escaped = quant.replace(/[.+^${}()|\\]/g, "\\$&");
  return new RegExp(`(^|[-._])${escaped}([-.]|$)`, "i").test(base.replace(/\.gguf$/i, ""));
}

/** The one model `spec` picks among a repository's files (its first part when split), or a typed error. */
export function pickModelFile(spec: HubModelSpec, files: readonly string[]): string {
  const where = `${spec.repoId}${spec.revision && spec.revision !== "main" ? `@${spec.revision}` : ""}`;
  const ggufs = files.filter(isModelGguf);
  let matches: string[];
  let wanted: string;
  if (spec.filename !== undefined && !/[*?[]/.test(spec.filename)) {
    if (!files.includes(spec.filename)) {
      throw new LlamaError("MODEL_NOT_FOUND", `${where} has no file ${spec.filename}${candidates(ggufs)}`);
    }
    return firstShard(spec.filename);
  } else if (spec.filename !== undefined) {
    const pattern = globToRegExp(spec.filename);
    matches = firstShards(files.filter((f) => pattern.test(f)));
    wanted = `file matching ${spec.filename}`;
  } else if (spec.quant !== undefined) {
    matches = firstShards(ggufs.filter((f) => carriesQuant(f, spec.quant!)));
    wanted = `GGUF tagged ${spec.quant}`;
  } else {
    // As llama-server's -hf without a tag: the one GGUF, else the Q4_K_M one.
    const models = firstShards(ggufs);
    matches = models.length === 1 ? models : firstShards(ggufs.filter((f) => carriesQuant(f, "Q4_K_M")));
    wanted = models.length === 0 ? "GGUF" : "GGUF tagged Q4_K_M (name a quantization: hf:owner/repo:QUANT)";
  }
  const [only] = matches;
  if (only !== undefined && matches.length === 1) return only;
  if (matches.length === 0) throw new LlamaError("MODEL_NOT_FOUND", `${where} has no ${wanted}${candidates(ggufs)}`);
  throw new LlamaError("AMBIGUOUS_MODEL", `${matches.length} files of ${where} match (a ${wanted} must be one): ${matches.join(", ")}`);
}

function candidates(ggufs: readonly string[]): string {
  const shown = firstShards(ggufs);
  if (shown.length === 0) return " (it holds no GGUF)";
  return ` (its GGUFs: ${shown.slice(0, 20).join(", ")}${shown.length > 20 ? `, and ${shown.length - 20} more` : ""})`;
}

/** The bits of a file's quantization tag (Q4_K_M: 4, F16: 16, BF16: 16), as llama.cpp reads them; 0 without one. */
function quantBits(path: string): number {
  const stem = path.slice(path.lastIndexOf("/") + 1).replace(SHARD, "$1.gguf").replace(/\.gguf$/i, "");
  const tag = /[-.]([A-Za-z0-9_]+)$/.exec(stem)?.[1] ?? "";
  const digits = /\d+/.exec(tag);
  return digits ? Number(digits[0]) : 0;
}

/**
 * The projector (an mmproj GGUF) that goes with `model` among a repository's files, as
 * llama-server's -hf picks it: in the model's folder or one above it, the deepest such, then the
 * one whose quantization is closest to the model's. Undefined when there is none.
 */
export function pickProjector(model: string, files: readonly string[]): string | undefined {
  const modelDirs = model.split("/").slice(0, -1);
  let best: { path: string; depth: number; diff: number } | undefined;
  for (const path of files) {
    const base = path.slice(path.lastIndexOf("/") + 1).toLowerCase();
    if (!base.endsWith(".gguf") || !base.includes("mmproj")) continue;
    const dirs = path.split("/").slice(0, -1);
    if (dirs.some((dir, i) => modelDirs[i] !== dir)) continue;
    const diff = Math.abs(quantBits(path) - quantBits(model));
    if (best === undefined || dirs.length > best.depth || (dirs.length === best.depth && diff < best.diff)) best = { path, depth: dirs.length, diff };
  }
  return best?.path;
}
