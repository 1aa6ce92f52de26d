// Types of scripts/build-llama-server.mjs, for the tests.
/** Where the built llama-server is. */
export function llamaServerPath(): string;
