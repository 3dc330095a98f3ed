// Runs every test/**/*.test.ts with node's test runner under tsx, one file at a time:
// each file loads real models, and two cores are better spent on one at a time.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir) {
    return readdirSync(dir).flatMap((name) => {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) return find(path);
        return name.endsWith(".test.ts") ? [path] : [];
    });
}

const filters = process.argv.slice(2);
const files = find("test")
    .filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)))
    .sort();
if (files.length === 0) {
    console.error("no test files matched");
    process.exit(1);
}
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...files], { stdio: "inherit" });
process.exit(result.status ?? 1);
