// Loads the addon: the only file that touches the binary (lib/core/native.ts declares its types).
// Importing llama-napi loads nothing: the first native call does, and where no binary runs here it
// throws one LlamaError (NO_BINARY) that says why and how to get one.
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import { LlamaError } from "../errors.js";
import { packageRoot } from "../package-root.js";
import type { NativeBinding } from "./native.js";

const requireHere = createRequire(__filename);

/** GPU prebuilds, most preferred first: each a folder prebuilds/<platform>-<arch>/<variant>/ with its own addon and modules. */
const GPU_VARIANTS = ["cuda"];

/**
 * The npm package that carries a GPU prebuild, installed beside llama-napi by those who want it
 * (`npm install @llama-napi/linux-x64-cuda`): GPU builds are too big to ship to everyone.
 */
function gpuPackageName(variant: string): string {
  return `@llama-napi/${process.platform}-${process.arch}-${variant}`;
}

/** Where a GPU variant's addon is: this package's own prebuilds folder (a local `npm run build:cuda`), else its package. */
function gpuAddon(root: string, variant: string): string | undefined {
  const folders = [join(root, "prebuilds", `${process.platform}-${process.arch}`, variant)];
  try {
    const manifest = createRequire(join(root, "package.json")).resolve(`${gpuPackageName(variant)}/package.json`);
    folders.push(join(dirname(manifest), "prebuilds", `${process.platform}-${process.arch}`, variant));
  } catch {
    // Not installed: the usual case.
  }
  for (const folder of folders) {
    const addon = existsSync(folder) ? readdirSync(folder).find((file) => file.endsWith(".node")) : undefined;
    if (addon) return join(folder, addon);
  }
  return undefined;
}

// Loads a GPU prebuild in a child process and asks it for a GPU: a missing driver or runtime, no
// device, or a crash while loading must cost this process nothing but the CPU fallback. When the
// GPU module itself does not load, dlopen's own words say which library is missing.
const GPU_PROBE = `
  const { dirname, join } = require("node:path");
  const addon = require(process.argv[1]);
  const gpus = addon.devices().filter((d) => d.type === "gpu" || d.type === "igpu");
  if (gpus.length > 0) process.exit(0);
  let why = "no GPU device found";
  const dir = dirname(process.argv[1]);
  const module = require("node:fs").readdirSync(dir).find((f) => /^libggml-(cuda|hip|vulkan)\\.so/.test(f));
  const registered = addon.buildInfo().backends.map((b) => b.toLowerCase());
  if (module && !registered.some((b) => module.includes(b))) {
    try { process.dlopen({ exports: {} }, join(dir, module)); }
    catch (e) { if (!/self-register/.test(e.message)) why = module + " does not load: " + e.message; }
  }
  console.error(why);
  process.exit(1);`;

function usableGpuPrebuild(root: string): { variant?: string; path?: string; rejected?: string } {
  for (const variant of GPU_VARIANTS) {
    const path = gpuAddon(root, variant);
    if (!path) continue;
    const probe = spawnSync(process.execPath, ["-e", GPU_PROBE, path], { encoding: "utf8", timeout: 60_000 });
    if (probe.status === 0) return { variant, path };
    const lastLine = probe.stderr?.trim().split("\n").pop();
    const why = probe.error?.message ?? (probe.signal ? `killed by ${probe.signal}` : lastLine || `exit ${probe.status}`);
    return { rejected: `the ${variant} prebuild is not usable here (${why.slice(0, 300)})` };
  }
  return {};
}

// ELF's e_machine values, by Node's names for the architectures.
const ELF_MACHINES: Record<number, string> = { 3: "ia32", 40: "arm", 62: "x64", 183: "arm64", 243: "riscv64", 21: "ppc64", 22: "s390x" };

/** The architecture an ELF binary is built for, or undefined for other formats (Mach-O, PE: not checked). */
function elfArch(path: string): string | undefined {
  const header = Buffer.alloc(20);
  const fd = openSync(path, "r");
  try {
    if (readSync(fd, header, 0, 20, 0) < 20 || header.readUInt32BE(0) !== 0x7f454c46) return undefined;
  } finally {
    closeSync(fd);
  }
  const machine = header[5] === 2 ? header.readUInt16BE(18) : header.readUInt16LE(18);
  return ELF_MACHINES[machine] ?? `ELF machine ${machine}`;
}

let libcName: string | undefined;

/** "glibc" or "musl" on Linux, "" elsewhere; read once (process.report builds a whole report). */
function libc(): string {
  if (libcName === undefined) {
    const report = process.platform === "linux" ? (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }) : null;
    libcName = report === null ? "" : report.header?.glibcVersionRuntime ? "glibc" : "musl";
  }
  return libcName;
}

interface Loaded {
  binding: NativeBinding;
  path: string;
  kind: string;
}

/** Loads one candidate, or says in a few words why it cannot run here. */
function tryLoad(path: string, kind: string): Loaded | string {
  if (!existsSync(path)) return "not found";
  const arch = elfArch(path);
  if (arch !== undefined && arch !== process.arch) return `built for ${arch}, not ${process.arch}`;
  let binding: NativeBinding;
  try {
    binding = requireHere(path) as NativeBinding;
  } catch (error) {
    return `does not load: ${(error as Error).message.split("\n")[0]!.slice(0, 300)}`;
  }
  // A portable binary brings its CPU code as modules beside it; without one that runs on this CPU
  // nothing can compute (llama.cpp would fail at the first model).
  const info = binding.buildInfo();
  if (info.portable && info.cpuBackendPath === "") {
    const folder = dirname(path);
    const variants = readdirSync(folder).filter((file) => /^libggml-cpu-.*\.so$/.test(file));
    return `none of its CPU variants runs on this CPU (${variants.length ? variants.join(", ") : "none present"} in ${folder})`;
  }
  return { binding, path, kind };
}

function noBinary(root: string | undefined, tried: string[]): LlamaError {
  const abi = process.versions.modules;
  const target = `${process.platform}-${process.arch}${libc() ? ` (${libc()})` : ""}, Node.js ${process.version} (ABI ${abi})`;
  const prebuilds = root === undefined ? "" : join(root, "prebuilds");
  const shipped = prebuilds && existsSync(prebuilds) ? readdirSync(prebuilds).filter((dir) => /^[a-z0-9]+-[a-z0-9]+$/.test(dir)) : [];
  return new LlamaError(
    "NO_BINARY",
    [
      `llama-napi has no native binary that runs on ${target}.`,
      ...tried.map((line) => `  ${line}`),
      ...(root === undefined ? [] : [`Prebuilds in this package: ${shipped.length ? shipped.join(", ") : "none"} (${root}).`]),
      "To build one from source (needs cmake, a C++ compiler and git):",
      "  npx llama-napi build",
      "or let npm run llama-napi's install script, which builds when no prebuild fits:",
      "  npm approve-scripts llama-napi && npm rebuild llama-napi   (npx or a global install: --allow-scripts=llama-napi)",
    ].join("\n"),
  );
}

/**
 * The addon to load: LLAMA_NAPI_BINARY if set; else a GPU prebuild that found a GPU in a child
 * process; else node-gyp-build's choice: this machine's source build (build/Release) when there is
 * one, otherwise the portable CPU prebuild. A candidate built for another architecture, or one with
 * no CPU variant for this CPU, is passed over (with one line on stderr when another one runs).
 */
function loadBinding(): Loaded {
  const override = process.env.LLAMA_NAPI_BINARY;
  if (override) {
    const loaded = tryLoad(resolve(override), "custom");
    if (typeof loaded === "string") throw noBinary(undefined, [`LLAMA_NAPI_BINARY=${override}: ${loaded}`]);
    return loaded;
  }
  const root = packageRoot();
  const candidates: Array<{ path: string; kind: string }> = [];
  const gpu = usableGpuPrebuild(root);
  if (gpu.path) candidates.push({ path: gpu.path, kind: gpu.variant! });
  const nodeGypBuild = requireHere("node-gyp-build") as { resolve(dir: string): string };
  try {
    const path = nodeGypBuild.resolve(root);
    candidates.push({ path, kind: relative(root, path).startsWith(`prebuilds${sep}`) ? "cpu" : "source" });
  } catch {
    // No build and no prebuild tagged for this platform: the error below lists what there is.
  }
  const prebuild = join(root, "prebuilds", `${process.platform}-${process.arch}`, `node.napi.${libc() || "glibc"}.node`);
  if (!candidates.some((c) => c.path === prebuild) && existsSync(prebuild)) candidates.push({ path: prebuild, kind: "cpu" });

  const passedOver = gpu.rejected ? [gpu.rejected] : [];
  for (const candidate of candidates) {
    const loaded = tryLoad(candidate.path, candidate.kind);
    if (typeof loaded !== "string") {
      if (passedOver.length > 0) console.warn(`[llama-napi] ${passedOver.join("; ")}; using ${relative(root, loaded.path)}`);
      return loaded;
    }
    passedOver.push(`${relative(root, candidate.path)} is not usable here (${loaded})`);
  }
  throw noBinary(root, passedOver.length ? passedOver : ["no build (build/Release) and no prebuild for this platform"]);
}

let loaded: Loaded | undefined;
let failure: LlamaError | undefined;

/** The addon, loaded on first use; throws the NO_BINARY LlamaError (the same one each time) when none runs here. */
export function loadedBinary(): Loaded {
  if (loaded) return loaded;
  if (failure) throw failure;
  try {
    loaded = loadBinding();
    return loaded;
  } catch (error) {
    failure = error instanceof LlamaError ? error : new LlamaError("NO_BINARY", (error as Error).message, { cause: error });
    throw failure;
  }
}

/** The addon's exports, loaded on first access (see loadedBinary). */
export const native: NativeBinding = new Proxy({} as NativeBinding, {
  get: (_target, key) => loadedBinary().binding[key as keyof NativeBinding],
});
