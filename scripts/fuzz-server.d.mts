// Types of scripts/fuzz-server.mjs, for the tests.
export function fuzzServer(
  base: string,
  options: { ops: number; seed?: number; key?: string; slotDir?: string },
): Promise<{ failures: string[]; statuses: Record<string, number> }>;
