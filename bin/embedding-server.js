#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm ci` (the prepare script).
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
    console.error("embedding-server is not built: run `npm ci` (or `npm run build`) in the package folder first.");
    process.exit(1);
}
await import(entry.href);
