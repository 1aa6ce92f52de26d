import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Native handles and llama.cpp threads: one process per test file, files one after another
    // (two cores; parallel files would only fight over them and skew the timing-sensitive tests).
    pool: "forks",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    reporters: ["default"],
  },
});
