#!/usr/bin/env bash
# Runs the native tests once under AddressSanitizer and LeakSanitizer.
#
# Builds the addon, llama.cpp and ggml with -fsanitize=address in build/asan (its own CMake tree:
# build/cmake and build/Release are left alone), then runs vitest with that addon
# (LLAMA_NAPI_BINARY) and clang's ASan runtime preloaded into node, which is not instrumented
# itself. Every process the tests start inherits both. Reports are written per process and sorted
# by where they point: llama-napi's own code (native/), llama.cpp/ggml, or neither (node, V8, and
# the other programs the tests run, which leak at exit by design). Leaks are reported by processes
# that exit normally: the tests' child processes (fuzzing, GC, exit, worker and soak scenarios);
# vitest's own workers are killed at the end, so their memory errors are caught but not leaks.
# Exit status 1 when any report points into native/, or a test fails.
#
#   scripts/asan.sh [test files...]    default: the tests that drive the addon
#
# Needs clang-19 and its runtime (Debian: apt-get install clang-19 libclang-rt-19-dev). The first
# build compiles all of llama.cpp with the sanitizer: several minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cc=${CC:-clang-19}
cxx=${CXX:-clang++-19}
runtime=$("$cc" -print-file-name=libclang_rt.asan-x86_64.so)
if [ ! -f "$runtime" ]; then
  echo "asan: $cc's ASan runtime is missing (Debian: apt-get install libclang-rt-19-dev)" >&2
  exit 2
fi

out=build/asan
addon=$root/$out/Release/llama_napi.node
flags="-fsanitize=address -fno-omit-frame-pointer -g"
launcher=()
command -v ccache >/dev/null && launcher=(--CDCMAKE_C_COMPILER_LAUNCHER=ccache --CDCMAKE_CXX_COMPILER_LAUNCHER=ccache)
echo "== building the sanitized addon in $out"
nice -n 5 node node_modules/cmake-js/bin/cmake-js build --out "$out" --config RelWithDebInfo --cc "$cc" --cxx "$cxx" \
  "--CDCMAKE_C_FLAGS=$flags" "--CDCMAKE_CXX_FLAGS=$flags" \
  "--CDCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address -shared-libasan" \
  "--CDLLAMA_NAPI_OUTPUT_DIR=$root/$out/Release" "${launcher[@]}" >"$out.log" 2>&1 ||
  { tail -30 "$out.log"; echo "asan: build failed (log: $out.log)" >&2; exit 2; }

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test/robustness/errors.test.ts test/core/tokenizer.test.ts test/core/generation.test.ts test/core/state.test.ts
  test/robustness/arguments.test.ts test/robustness/lifecycle.test.ts test/robustness/fuzz.test.ts)

# The tests' child processes use a compiled copy of lib/ with this addon: compile it now, without
# the sanitizer (tsc under ASan takes minutes).
LLAMA_NAPI_BINARY=$addon node scripts/compiled-lib.mjs >/dev/null

reports=$(mktemp -d "${TMPDIR:-/tmp}/llama-napi-asan-XXXXXX")
symbolizer=$(command -v llvm-symbolizer-19 || command -v llvm-symbolizer || true)
echo "== running ${tests[*]} under ASan/LSan (reports in $reports)"
set +e
# handle_segv=0: V8 handles its own SIGSEGVs (guard pages); ASan must not take them over.
# LSan's exitcode=0: node leaves its own bookkeeping unfreed at exit, which must not fail the exit
# status checks of the tests' child processes (memory errors still exit 1). The RSS soak test is
# left out: ASan's quarantine holds freed memory on purpose.
LLAMA_NAPI_BINARY=$addon LD_PRELOAD=$runtime ASAN_SYMBOLIZER_PATH=$symbolizer LSAN_OPTIONS=exitcode=0 \
  ASAN_OPTIONS="detect_leaks=1:handle_segv=0:allow_user_segv_handler=1:detect_odr_violation=0:log_path=$reports/asan" \
  npx vitest run --testTimeout=1200000 --hookTimeout=1200000 --testNamePattern '^(?!.*keep RSS flat)' "${tests[@]}"
status=$?
set -e

node - "$reports" "$status" <<'EOF'
const { readdirSync, readFileSync } = require("node:fs");
const { join } = require("node:path");
const [dir, status] = process.argv.slice(2);
// One report: from an "ERROR: ...Sanitizer" line to the next, or to SUMMARY.
const reports = [];
for (const file of readdirSync(dir)) {
  const text = readFileSync(join(dir, file), "utf8");
  for (const block of text.split(/(?=^(?:==\d+==)?ERROR: \w+Sanitizer|^(?:Direct|Indirect) leak of)/m)) {
    // LeakSanitizer's ERROR line only heads its list of leaks: each leak is a report.
    if (/^(?:==\d+==)?ERROR: LeakSanitizer/.test(block)) continue;
    if (/^(?:==\d+==)?ERROR: \w+Sanitizer|^(?:Direct|Indirect) leak of/.test(block)) reports.push({ file, block });
  }
}
// A report belongs to the first frame below the sanitizer's allocator or interceptor: llama-napi
// (native/, or node-addon-api's inline code compiled into the addon), llama.cpp/ggml, or other
// (node and V8: their bookkeeping for objects still alive at exit, and every program the tests run).
function origin(block) {
  const frames = block.split("\n").filter((line) => /^\s+#\d+ /.test(line) && !/libclang_rt\.asan/.test(line));
  const first = frames[0] ?? "";
  if (/\/native\/\w+\.(cpp|h)|node-addon-api\/napi-inl\.h/.test(first)) return "llama-napi";
  if (/vendor\/llama\.cpp|llama_napi\.node/.test(first)) return "llama.cpp";
  return "other";
}
const counts = { "llama-napi": 0, "llama.cpp": 0, other: 0 };
for (const r of reports) counts[origin(r.block)]++;
for (const r of reports.filter((r) => origin(r.block) !== "other")) {
  console.log(`--- ${r.file}\n${r.block.split("\n").slice(0, 25).join("\n")}`);
}
// Node's bookkeeping for the addon's objects (napi_wrap, napi_create_external) stays "other", but
// is listed by where node allocated it, so that nothing that passed through the addon goes unseen.
const viaAddon = new Map();
for (const r of reports.filter((r) => origin(r.block) === "other" && /llama_napi|\/native\//.test(r.block))) {
  const site = (r.block.split("\n").find((line) => /^\s+#\d+ /.test(line) && !/libclang_rt\.asan/.test(line)) ?? "").replace(/^\s+#\d+ 0x[0-9a-f]+ in /, "").replace(/ \(.*$/, "");
  viaAddon.set(site, (viaAddon.get(site) ?? 0) + 1);
}
for (const [site, n] of viaAddon) console.log(`other, allocated by node for the addon's objects: ${n} x ${site}`);
console.log(`vitest exit status ${status}`);
console.log(`ASan/LSan reports: ${counts["llama-napi"]} in llama-napi (native/), ${counts["llama.cpp"]} in llama.cpp/ggml, ${counts.other} elsewhere (node, V8)`);
// Memory errors (not leaks) fail the run wherever they point: the addon can corrupt node's memory.
const memoryErrors = reports.filter((r) => /ERROR: AddressSanitizer/.test(r.block)).length;
console.log(`memory errors (overflows, use after free...): ${memoryErrors}`);
process.exitCode = counts["llama-napi"] > 0 || memoryErrors > 0 || status !== "0" ? 1 : 0;
EOF
