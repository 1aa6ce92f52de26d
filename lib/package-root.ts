// Where the installed package is: its files beside the compiled code (prebuilds, scripts, package.json).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** The nearest folder above this file (lib/ or dist/cjs, dist/esm) holding llama-napi's package.json. */
export function packageRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "llama-napi") return dir;
    if (dirname(dir) === dir) throw new Error(`llama-napi: package root not found above ${__dirname}`);
  }
}
