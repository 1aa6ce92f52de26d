// Types of scripts/compiled-lib.mjs, for the tests.
export interface CompiledLibrary {
  /** Folder of the compiled CommonJS library: require(join(lib, "index.js")). */
  lib: string;
  /** The private copy of the addon. */
  binary: string;
  /** Environment that makes the compiled library load that copy. */
  env: { LLAMA_NAPI_BINARY: string };
}

export function compiledLibrary(): CompiledLibrary;
