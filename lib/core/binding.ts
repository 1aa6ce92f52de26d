// Loads the addon: the only file that touches the binary (lib/core/native.ts declares its types).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, sep } from "node:path";
import type { NativeBinding } from "./native.js";

/** The package root: the nearest folder above this file with llama-napi's package.json. */
function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "llama-napi") {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`llama-napi: package root not found above ${__dirname}`);
    dir = parent;
  }
}

const requireHere = createRequire(__filename);

/** GPU prebuilds, most preferred first: each a folder in prebuilds/<platform>-<arch>/ with its own addon and modules. */
const GPU_VARIANTS = ["cuda"];

// Loads a GPU prebuild in a child process and asks it for a GPU: a missing driver or runtime, no
// device, or a crash while loading must cost this process nothing but the CPU fallback.
const GPU_PROBE = `
  const gpus = require(process.argv[1]).devices().filter((d) => d.type === "gpu" || d.type === "igpu");
  if (gpus.length === 0) { console.error("no GPU device found"); process.exit(1); }`;

function usableGpuPrebuild(root: string): { variant?: string; path?: string; rejected?: string } {
  const platformDir = join(root, "prebuilds", `${process.platform}-${process.arch}`);
  for (const variant of GPU_VARIANTS) {
    const dir = join(platformDir, variant);
    const addon = existsSync(dir) ? readdirSync(dir).find((file) => file.endsWith(".node")) : undefined;
    if (!addon) continue;
    const path = join(dir, addon);
    const probe = spawnSync(process.execPath, ["-e", GPU_PROBE, path], { encoding: "utf8", timeout: 60_000 });
    if (probe.status === 0) return { variant, path };
    const lastLine = probe.stderr?.trim().split("\n").pop();
    const why = probe.error?.message ?? (probe.signal ? `killed by ${probe.signal}` : lastLine || `exit ${probe.status}`);
    return { rejected: `the ${variant} prebuild is not usable here (${why.slice(0, 200)})` };
  }
  return {};
}

/**
 * The addon to load: LLAMA_NAPI_BINARY if set; else a GPU prebuild that found a GPU in a child
 * process; else node-gyp-build's choice: this machine's source build (build/Release) when there is
 * one, otherwise the portable CPU prebuild.
 */
function loadBinding(): { binding: NativeBinding; path: string; kind: string } {
  const override = process.env.LLAMA_NAPI_BINARY;
  if (override) return { binding: requireHere(override) as NativeBinding, path: override, kind: "custom" };
  const root = packageRoot();
  const gpu = usableGpuPrebuild(root);
  const nodeGypBuild = requireHere("node-gyp-build") as { (dir: string): unknown; resolve(dir: string): string };
  const path = gpu.path ?? nodeGypBuild.resolve(root);
  if (gpu.rejected) console.warn(`[llama-napi] ${gpu.rejected}; using ${relative(root, path)}`);
  const kind = gpu.variant ?? (relative(root, path).startsWith(`prebuilds${sep}`) ? "cpu" : "source");
  return { binding: requireHere(path) as NativeBinding, path, kind };
}

const loaded = loadBinding();

/** The addon's exports. */
export const native: NativeBinding = loaded.binding;
/** The file the addon was loaded from. */
export const nativePath: string = loaded.path;
/** Which binary that is: a GPU prebuild (`cuda`), the portable CPU prebuild (`cpu`), this machine's build (`source`), or LLAMA_NAPI_BINARY's (`custom`). */
export const nativeKind: string = loaded.kind;
