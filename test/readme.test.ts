import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import * as errors from "../src/core/errors.js";
import { configReferenceTable } from "../scripts/config-reference.js";

const readme = readFileSync("README.md", "utf8");

describe("README stays true", () => {
    it("embeds the current configuration reference", () => {
        const start = readme.indexOf("<!-- config-reference:start -->");
        const end = readme.indexOf("<!-- config-reference:end -->");
        assert.ok(start > 0 && end > start, "markers present");
        const embedded = readme.slice(start + "<!-- config-reference:start -->".length, end).trim();
        assert.equal(embedded, configReferenceTable(), "run `npx tsx scripts/config-reference.ts` and paste the table into README.md");
    });

    it("documents every error code with its status", () => {
        for (const value of Object.values(errors)) {
            if (typeof value !== "function" || !(value.prototype instanceof errors.ApiError)) continue;
            const err = new (value as new (m: string) => errors.ApiError)("x");
            if (err.code === "request_cancelled") continue; // never sent: the client is gone
            assert.ok(readme.includes(`\`${err.code}\``), `README lacks error code ${err.code}`);
            assert.match(readme, new RegExp(`\\| ${err.status} \\|[^\\n]*\`${err.code}\``), `README gives ${err.code} another status than ${err.status}`);
        }
    });

    it("names the two set-up commands", () => {
        assert.match(readme, /npm ci\nnpx embedding-server serve/);
        assert.match(readme, /npm ci && npm test/);
    });
});
