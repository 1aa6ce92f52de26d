// `llama-napi pull`: models from the Hugging Face Hub into its cache (shared with Python's
// huggingface_hub); `llama-napi cache`: what that cache holds. Neither loads the addon.
import { defaultCacheDir, listCachedModels } from "../hub/cache.js";
import { resolveModelFile } from "../hub/resolve.js";
import { helpOption, UsageError, type CommandSpec, type Flags } from "./args.js";
import { DownloadProgressView, formatBytes, type CliIo } from "./io.js";

const HUB_NOTES =
  "Environment: HF_ENDPOINT (a mirror), HF_TOKEN (gated and private repositories), HF_HUB_CACHE or\n" +
  "HF_HOME (where the cache is; default ~/.cache/huggingface/hub), HF_HUB_OFFLINE=1 (the cache only).";

const cacheDirOption = { "cache-dir": { type: "string", value: "DIR", help: "the Hub cache (default: $HF_HUB_CACHE, else $HF_HOME/hub)" } } as const;

export const pullSpec: CommandSpec = {
  name: "pull",
  usage: "pull MODEL... [options]",
  brief: "download models from the Hugging Face Hub into its cache",
  summary:
    "Download each MODEL into the Hugging Face cache (every part of a split model), unless it is\n" +
    "already there whole, and print its local path. MODEL is hf:owner/repo:QUANT (the GGUF tagged\n" +
    "with that quantization), hf:owner/repo/path/file.gguf (a path, or a glob matching one model),\n" +
    "or hf:owner/repo (its one GGUF, else its Q4_K_M). Any command's -m takes the same names.",
  groups: [
    {
      title: "Options",
      options: {
        revision: { type: "string", value: "REV", help: "a branch, tag or commit (default main)" },
        token: { type: "string", value: "TOKEN", help: "a Hub access token (default: $HF_TOKEN, else the saved login)" },
        ...cacheDirOption,
        quiet: { type: "boolean", short: "q", help: "no progress on stderr" },
        ...helpOption,
      },
    },
  ],
  maxPositionals: Infinity,
  notes: HUB_NOTES,
};

export async function pullCommand(flags: Flags, io: CliIo): Promise<number> {
  if (flags.positionals.length === 0) throw new UsageError("name a model to pull, e.g. hf:owner/repo:Q4_K_M");
  const notHub = flags.positionals.find((m) => !m.startsWith("hf:"));
  if (notHub !== undefined) throw new UsageError(`${JSON.stringify(notHub)} is not a Hub model: write hf:owner/repo:QUANT or hf:owner/repo/file.gguf`);
  const view = flags.bool("quiet") ? null : new DownloadProgressView(io.stderr);
  for (const model of flags.positionals) {
    let path: string;
    try {
      path = await resolveModelFile(model, {
        revision: flags.string("revision"),
        token: flags.string("token"),
        cacheDir: flags.string("cache-dir"),
        onDownloadProgress: view ? (p) => view.update(p) : undefined,
      });
    } finally {
      view?.finish();
    }
    io.stdout.write(`${path}\n`);
  }
  return 0;
}

export const cacheSpec: CommandSpec = {
  name: "cache",
  usage: "cache [options]",
  brief: "list the models in the Hugging Face cache, with their sizes",
  summary:
    "List the model repositories in the Hugging Face cache: each one's size on disk (a file shared by\n" +
    "revisions counted once), its revisions (commit and the branches or tags naming it) and files.",
  groups: [{ title: "Options", options: { ...cacheDirOption, json: { type: "boolean", help: "print it as JSON" }, ...helpOption } }],
  maxPositionals: 0,
  notes: HUB_NOTES,
};

export async function cacheCommand(flags: Flags, io: CliIo): Promise<number> {
  const cacheDir = flags.string("cache-dir") ?? defaultCacheDir();
  const repos = await listCachedModels(cacheDir);
  if (flags.bool("json")) {
    io.stdout.write(JSON.stringify({ cacheDir, repos }, null, 2) + "\n");
    return 0;
  }
  if (repos.length === 0) {
    io.stdout.write(`No models in ${cacheDir}\n`);
    return 0;
  }
  const width = Math.max(...repos.map((r) => r.repoId.length));
  for (const repo of repos) {
    io.stdout.write(`${repo.repoId.padEnd(width)}  ${formatBytes(repo.size).padStart(10)}  ${repo.path}\n`);
    for (const revision of repo.revisions) {
      const refs = revision.refs.length > 0 ? ` (${revision.refs.join(", ")})` : "";
      for (const file of revision.files) io.stdout.write(`  ${revision.commit.slice(0, 8)}${refs}  ${file.path}  ${formatBytes(file.size)}\n`);
    }
  }
  const total = repos.reduce((sum, r) => sum + r.size, 0);
  io.stdout.write(`${repos.length} ${repos.length === 1 ? "repository" : "repositories"}, ${formatBytes(total)} in ${cacheDir}\n`);
  return 0;
}
