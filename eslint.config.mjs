import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "build/", "vendor/", "node_modules/", "prebuilds/", "test/.consumer-build/", ".bench/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly", Buffer: "readonly", __dirname: "readonly", __filename: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", performance: "readonly", AbortController: "readonly", AbortSignal: "readonly", TextDecoder: "readonly", URL: "readonly", require: "readonly", module: "writable", queueMicrotask: "readonly", structuredClone: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    // CommonJS on purpose: the launcher, the fuzz child, and the consumer that checks `require` types.
    files: ["**/*.cjs", "bin/**/*.js", "test/consumer/*.cts"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
