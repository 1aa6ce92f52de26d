// The package works from both `import` and `require`, with types for both: compiled consumers in
// each module system type-check against the built declarations and run a completion.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { modelPath, repoRoot } from "../helpers.js";

const consumerDir = join(repoRoot, "test", "consumer");
const outDir = join(repoRoot, "test", ".consumer-build");

describe("import and require", () => {
  beforeAll(() => {
    execFileSync(process.execPath, [join(repoRoot, "scripts", "build-ts.mjs")], { stdio: "pipe" });
    rmSync(outDir, { recursive: true, force: true });
    const tsc = createRequire(join(repoRoot, "package.json")).resolve("typescript/bin/tsc");
    execFileSync(process.execPath, [tsc, "-p", join(consumerDir, "tsconfig.json")], { stdio: "pipe" });
  });

  it.each([
    ["require", "consumer.cjs"],
    ["import", "consumer.mjs"],
  ])("%s runs a completion", (via, file) => {
    const out = execFileSync(process.execPath, [join(outDir, file), modelPath("stories260K.gguf")], { encoding: "utf8" });
    expect(JSON.parse(out.trim())).toMatchObject({ via, text: ", there was a" });
  });

  it("the README's quick start shows examples/quickstart.mjs and what it prints", () => {
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const quickStart = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("Run the tests:"));
    // Its fenced blocks: the shell command, the code, the output.
    const [, code, printed] = [...quickStart.matchAll(/^```\w*\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
    const example = readFileSync(join(repoRoot, "examples", "quickstart.mjs"), "utf8");
    // The file opens with a comment line the README leaves out.
    expect(example.slice(example.indexOf("\n") + 1)).toBe(code);
    const out = execFileSync(process.execPath, [join(repoRoot, "examples", "quickstart.mjs")], { cwd: repoRoot, encoding: "utf8" });
    expect(out).toBe(printed);
  });

  it("the README's image section shows examples/image.mjs, which runs", () => {
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Images and audio"), readme.indexOf("## The low-level classes"));
    const [code] = [...section.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
    const example = readFileSync(join(repoRoot, "examples", "image.mjs"), "utf8");
    // The file opens with comment lines the README leaves out.
    expect(example.slice(example.indexOf("import "))).toBe(code);
    const out = execFileSync(process.execPath, [join(repoRoot, "examples", "image.mjs")], { cwd: repoRoot, encoding: "utf8" }).split("\n");
    expect(out[0]).toBe("{ vision: true, audio: false }");
    expect(out.at(-2)).toMatch(/^\d+ prompt tokens, 16 of them the image's$/);
  });

  it("both module systems get the same classes", () => {
    const script = `
      const viaRequire = require("llama-napi");
      import("llama-napi").then((viaImport) => {
        console.log(viaImport.Llama === viaRequire.Llama && viaImport.LlamaError === viaRequire.LlamaError);
      });`;
    expect(execFileSync(process.execPath, ["-e", script], { cwd: repoRoot, encoding: "utf8" }).trim()).toBe("true");
  });
});
