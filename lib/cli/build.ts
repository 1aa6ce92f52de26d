// `llama-napi build`: builds the addon from source inside the installed package, for platforms with
// no prebuild or installs whose install script did not run (npm 12 runs a dependency's install
// script only once the app allows it). It does what the install script does: fetch the pinned
// llama.cpp, build it and native/ with cmake-js for this machine's CPU (clang first: GCC 12
// miscompiles ggml's AMX kernels), then load the result.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { packageRoot } from "../package-root.js";

const HELP = `Usage: llama-napi build [--debug] [--CDNAME=VALUE ...]

Builds llama-napi's native addon from source into the installed package (build/Release), for a
platform without a prebuild or an install whose install script did not run. It fetches the pinned
llama.cpp source from the npm registry and compiles it for this machine's CPU: several minutes.
Needs cmake, a C++ compiler (clang preferred) and git; ninja and ccache make it faster.

Options:
  --debug         a debug build
  --CDNAME=VALUE  a CMake setting, passed through
  -h, --help      this text`;

function onPath(command: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

/** What the build needs and this machine lacks, each with the Debian/Ubuntu package that brings it. */
function missingBuildTools(): string[] {
  const has = onPath;
  const missing: string[] = [];
  if (!has("cmake")) missing.push("cmake (apt-get install cmake; brew install cmake)");
  const compilers = ["clang++", "clang++-19", "clang++-18", "g++", "c++"];
  if (!compilers.some(has)) missing.push("a C++ compiler (apt-get install clang-19, or build-essential; xcode-select --install)");
  if (!has("git")) missing.push("git (apt-get install git)");
  return missing;
}

export async function buildCommand(argv: string[]): Promise<number> {
  let values;
  const passThrough = argv.filter((arg) => arg.startsWith("--CD"));
  try {
    ({ values } = parseArgs({
      args: argv.filter((arg) => !arg.startsWith("--CD")),
      options: { debug: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`llama-napi build: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  const missing = missingBuildTools();
  if (missing.length > 0) {
    process.stderr.write(`llama-napi build: missing ${missing.join("; ")}\n`);
    return 1;
  }
  const root = packageRoot();
  const flags = [...(values.debug ? ["--debug"] : []), ...passThrough];
  process.stderr.write(`[llama-napi] building the addon from source in ${root} (several minutes)\n`);
  const build = spawnSync(process.execPath, [join(root, "scripts", "build.mjs"), ...flags], { cwd: root, stdio: "inherit" });
  if (build.status !== 0) {
    process.stderr.write(`llama-napi build: the build failed (exit ${build.status ?? build.signal}); its output is above\n`);
    return 1;
  }
  // Load it in a fresh process, as an app will.
  const check = spawnSync(
    process.execPath,
    ["-e", `const i = require(${JSON.stringify(join(root, "dist", "cjs", "index.js"))}).buildInfo(); console.log(i.binaryPath + " (" + i.compiler + ", " + i.backends.join(", ") + ")")`],
    { encoding: "utf8" },
  );
  if (check.status !== 0) {
    process.stderr.write(`llama-napi build: the new addon does not load:\n${check.stderr}`);
    return 1;
  }
  process.stdout.write(`built ${check.stdout.trim()}\n`);
  return 0;
}
