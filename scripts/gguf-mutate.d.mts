// Types of scripts/gguf-mutate.mjs, for the tests.
export interface SeedFile {
  path: string;
  name: string;
  weight: number;
  vocabOnly: boolean;
}

export interface MutationCase {
  index: number;
  seedFile: string;
  strategy: string;
  note: string;
  load: { vocabOnly: boolean; useMmap: boolean };
  bytes: Buffer;
}

export type TypeInfo = (id: number) => { blockSize: number; typeSize: number } | undefined;

export function loadCorpus(which: "all" | "models" | "stories260K" | "generated-vocabs", typeInfo: TypeInfo): SeedFile[];
export function makeCase(corpus: SeedFile[], seed: number, index: number): MutationCase;
export const STRATEGIES: readonly string[];
