#!/usr/bin/env node
// Builds a prebuilt binary and lays it out where node-gyp-build (lib/core/binding.ts) looks for it:
//   node scripts/prebuild.mjs              portable CPU build           -> prebuilds/linux-<arch>/
//   node scripts/prebuild.mjs --arch arm64 the same, cross-compiled     -> prebuilds/linux-arm64/
//   node scripts/prebuild.mjs --cuda       CUDA build                   -> prebuilds/linux-<arch>/cuda/
// The addon is named as prebuildify names it (node.napi.glibc.node) and sits beside its shared
// libraries and ggml's modules (every CPU variant, RPC; CUDA), all stripped; its RPATH is $ORIGIN and
// it loads the modules from its own folder. The result is loaded in a fresh process (under qemu-user
// for another architecture) before it counts. --no-build packs what the build folder already holds;
// other arguments (--CDNAME=VALUE) go to scripts/build.mjs.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { variantOf } from "./build.mjs";
import { emulatedNode } from "./emulated-node.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const cuda = args.includes("--cuda");
const arch = args.includes("--arch") ? args[args.indexOf("--arch") + 1] : process.arch;
const cross = arch !== process.arch;
const variant = variantOf(cuda ? ["--cuda", ...args] : ["--portable", ...args]);
const variantFolder = join(root, variant.folder, "bin");
const platformDir = join(root, "prebuilds", `${process.platform}-${arch}`);
const outDir = cuda ? join(platformDir, "cuda") : platformDir;
// binutils for the target: the host's strip does not know another architecture's ELF.
const strip = cross ? { arm64: "aarch64-linux-gnu-strip" }[arch] : "strip";

if (process.platform !== "linux") {
  // The layout relies on ELF's $ORIGIN and SONAMEs; macOS (@loader_path) and Windows are not done yet.
  console.error("[prebuild] prebuilds are made on Linux only; elsewhere `npm run build` builds from source");
  process.exit(1);
}

function run(file, argv) {
  const result = spawnSync(file, argv, { cwd: root, stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

/** The SONAME a shared library is loaded by, or null (ggml's modules have none: they are dlopen'ed by path). */
function soname(path) {
  const dynamic = execFileSync("readelf", ["-d", path], { encoding: "utf8" });
  return /Library soname: \[([^\]]+)\]/.exec(dynamic)?.[1] ?? null;
}

/** node-gyp-build's tags: N-API, and the C library the binary was linked against (a cross build: Debian's glibc). */
function addonName() {
  const glibc = cross || process.report.getReport().header.glibcVersionRuntime;
  return glibc ? "node.napi.glibc.node" : "node.napi.musl.node";
}

if (!args.includes("--no-build")) {
  const passThrough = args.filter((arg) => arg.startsWith("--CD"));
  const archFlag = cross ? ["--arch", arch] : [];
  run(process.execPath, [join(root, "scripts", "build.mjs"), cuda ? "--cuda" : "--portable", ...archFlag, ...passThrough]);
}

// Start from an empty folder, but keep the GPU variants' subfolders when packing the CPU one.
mkdirSync(outDir, { recursive: true });
for (const entry of readdirSync(outDir)) {
  if (statSync(join(outDir, entry)).isFile()) rmSync(join(outDir, entry));
}

const files = [];
for (const entry of readdirSync(variantFolder)) {
  const source = join(variantFolder, entry);
  // The versioned file is the library; its unversioned and SONAME symlinks are not copied (npm
  // drops symlinks): the copy is named by its SONAME, the name the loader asks for.
  if (lstatSync(source).isSymbolicLink()) continue;
  let target;
  if (entry === "llama_napi.node") target = addonName();
  else if (/\.so(\.\d+)*$/.test(entry)) target = soname(source) ?? entry;
  else continue;
  copyFileSync(source, join(outDir, target));
  run(strip, ["--strip-unneeded", join(outDir, target)]);
  files.push(target);
}
for (const required of [addonName(), "libggml-rpc.so", ...(cuda ? ["libggml-cuda.so"] : [])]) {
  if (!files.includes(required)) {
    console.error(`[prebuild] ${required} missing from ${variantFolder}: the build did not finish`);
    process.exit(1);
  }
}

// Load it from its new home in a fresh process: proves the names, the RPATH and the module search.
const node = cross ? emulatedNode(arch) : { command: process.execPath, args: [] };
const check = spawnSync(
  node.command,
  [...node.args, "-e", "const i = require(process.argv[1]).buildInfo(); console.log(JSON.stringify(i))", join(outDir, addonName())],
  { encoding: "utf8" },
);
if (check.status !== 0) {
  console.error(`[prebuild] the prebuild does not load:\n${check.stderr}`);
  process.exit(1);
}
const info = JSON.parse(check.stdout);

let bytes = 0;
let gzipped = 0;
for (const file of files.sort()) {
  const data = readFileSync(join(outDir, file));
  bytes += data.length;
  gzipped += gzipSync(data, { level: 6 }).length;
  console.log(`  ${(data.length / 2 ** 20).toFixed(2).padStart(8)} MiB  ${file}`);
}
const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
console.log(`[prebuild] ${outDir}: ${files.length} files, ${mib(bytes)} stripped (${mib(gzipped)} gzipped, as npm packs it)`);
console.log(
  `[prebuild] llama.cpp ${info.llamaCommit.slice(0, 12)}, ${info.compiler}, backends ${info.backends.join(", ")}; ` +
    `CPU variant on this machine: ${info.cpuVariant}`,
);
