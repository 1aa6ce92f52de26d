// Types of scripts/emulated-node.mjs, for the tests.
/** The Node.js release run under emulation. */
export const EMULATED_NODE_VERSION: string;
/** Downloads (once) the official Node.js binary for `arch` from the npm registry; returns its path. */
export function fetchNode(arch?: string): string;
/** The command (qemu-user and its arguments, Node.js last) that runs Node.js for `arch` here; throws naming what is missing. */
export function emulatedNode(arch?: string, options?: { cpu?: string }): { command: string; args: string[] };
