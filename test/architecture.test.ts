// The layout's rules (ARCHITECTURE.md), read from the sources: who may touch the addon, who may make
// native batches, no import cycles, and the size of a file.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import madge from "madge";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers.js";

function filesUnder(dir: string, extension: RegExp): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path, extension);
    return extension.test(name) ? [path] : [];
  });
}

const lib = join(repoRoot, "lib");
const sources = filesUnder(lib, /\.ts$/).map((path) => ({ path: relative(repoRoot, path), text: readFileSync(path, "utf8") }));

/** The relative specifiers a file imports or re-exports from. */
function importsOf(text: string): string[] {
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map((m) => m[1]!);
}

describe("the layout", () => {
  it("only lib/core loads the addon, and only through lib/core/binding.ts", () => {
    const loaders = sources.filter((s) => /node-gyp-build|\.node["']|requireHere\(/.test(s.text)).map((s) => s.path);
    expect(loaders).toEqual(["lib/core/binding.ts"]);
    const importers = sources.filter((s) => importsOf(s.text).some((spec) => spec.endsWith("/binding.js"))).map((s) => s.path);
    expect(importers.length).toBeGreaterThan(0);
    expect(importers.filter((path) => !path.startsWith("lib/core/"))).toEqual([]);
  });

  it("only lib/core/batch.ts makes native batches", () => {
    // The branded NativeBatch can only come from the factory; its arrays type is named nowhere else.
    const naming = sources.filter((s) => /\bNativeBatchArrays\b/.test(s.text)).map((s) => s.path).sort();
    expect(naming).toEqual(["lib/core/batch.ts", "lib/core/native.ts"]);
    const sealing = sources.filter((s) => /as NativeBatch\b/.test(s.text)).map((s) => s.path);
    expect(sealing).toEqual(["lib/core/batch.ts"]);
  });

  it("lower layers never import higher ones", () => {
    // Each layer may import those after it in this list, never those before it.
    const order = ["cli", "server", "tools", "completion", "hub", "core", "gguf"];
    const layerOf = (path: string) => order.find((layer) => path.startsWith(`lib/${layer}/`));
    const upward: string[] = [];
    for (const source of sources) {
      const from = layerOf(source.path);
      if (from === undefined) continue;
      for (const spec of importsOf(source.text)) {
        const target = relative(repoRoot, join(repoRoot, source.path, "..", spec));
        const to = layerOf(target);
        if (to !== undefined && order.indexOf(to) < order.indexOf(from)) upward.push(`${source.path} -> ${target}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it("has no import cycles, type-only imports included", async () => {
    const graph = await madge(lib, { fileExtensions: ["ts"] });
    expect(graph.circular()).toEqual([]);
  });

  it("keeps TypeScript files in lib/ within 450 lines and C++ files in native/ within 500", () => {
    const long = (paths: string[], limit: number) =>
      paths.map((path) => ({ path: relative(repoRoot, path), lines: readFileSync(path, "utf8").split("\n").length - 1 })).filter((f) => f.lines > limit);
    expect(long(filesUnder(lib, /\.ts$/), 450)).toEqual([]);
    expect(long(filesUnder(join(repoRoot, "native"), /\.(cpp|h)$/), 500)).toEqual([]);
  });
});
