// Types of scripts/build.mjs, for the tests.
/** The clang the build uses when one is on PATH (GCC 12 miscompiles ggml's AMX kernels), else null. */
export function pickCompiler(): { cc: string; cxx: string } | null;
/** Whether a command is on PATH. */
export function onPath(command: string): boolean;
