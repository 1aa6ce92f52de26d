#!/usr/bin/env node
"use strict";
// The `llama-napi` command: runs the compiled CLI (dist/, built by `npm run build:ts`).
const { runCli } = require("../dist/cjs/cli/main.js");

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`llama-napi: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
