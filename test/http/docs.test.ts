import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { embedBatchResponse, embedResponse, openaiEmbeddingsResponse } from "../../src/http/schemas.js";
import { startTestServer, type TestServer } from "../helpers/testServer.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

describe("OpenAPI document and Swagger UI", () => {
    let server: TestServer;
    let url: string;
    before(async () => {
        server = await startTestServer();
        url = await server.app.listen({ host: "127.0.0.1", port: 0 });
    });
    after(() => server.close());

    it("/openapi.json is generated from the validation schemas", async () => {
        const res = await server.inject({ method: "GET", url: "/openapi.json" });
        assert.equal(res.statusCode, 200);
        const doc = res.json();
        assert.match(doc.openapi, /^3\./);
        for (const path of ["/embed", "/embed/batch", "/similarity", "/v1/embeddings", "/v1/models", "/health", "/info", "/metrics"]) {
            assert.ok(doc.paths[path], `missing ${path}`);
        }
        const body = doc.paths["/v1/embeddings"].post.requestBody.content["application/json"].schema;
        assert.deepEqual(body.required, ["input"]);
        assert.deepEqual(body.properties.encoding_format.enum, ["float", "base64"]);
        assert.equal(body.properties.dimensions.type, "integer");
        assert.ok(doc.paths["/v1/embeddings"].post.responses["429"], "error responses are documented");
        assert.ok(doc.components.securitySchemes.bearer);
    });

    it("hand-serialized responses match their documented schemas", async () => {
        const cases: [string, object, { parse(v: unknown): unknown }][] = [
            ["/v1/embeddings", { input: ["a", "b"] }, openaiEmbeddingsResponse],
            ["/v1/embeddings", { input: "a", encoding_format: "base64" }, openaiEmbeddingsResponse],
            ["/embed", { text: "a" }, embedResponse],
            ["/embed/batch", { texts: ["a", "b"] }, embedBatchResponse],
        ];
        for (const [url, body, schema] of cases) {
            const res = await server.post(url, body);
            assert.equal(res.statusCode, 200, res.body);
            assert.match(String(res.headers["content-type"]), /^application\/json/);
            schema.parse(res.json());
        }
    });

    it("/docs renders the endpoints in a real browser", { skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM}` }, async () => {
        let browser: Browser | undefined;
        try {
            browser = await chromium.launch({
                executablePath: CHROMIUM,
                args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            });
            const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
            const errors: string[] = [];
            page.on("pageerror", (e) => errors.push(e.message));
            await page.goto(`${url}/docs`, { waitUntil: "networkidle" });
            await page.waitForSelector(".opblock", { timeout: 15_000 });
            const paths = await page.$$eval(".opblock-summary-path", (els) => els.map((e) => e.textContent?.replace(/\u200b/g, "").trim()));
            for (const p of ["/embed", "/v1/embeddings", "/similarity", "/health"]) assert.ok(paths.includes(p), `Swagger UI lists ${p}: ${paths.join(", ")}`);
            mkdirSync(".cache", { recursive: true });
            await page.screenshot({ path: ".cache/docs-page.png" });
            assert.deepEqual(errors, []);
        } finally {
            await browser?.close();
        }
    });
});
