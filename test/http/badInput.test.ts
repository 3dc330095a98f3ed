import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "../helpers/testServer.js";

interface Case {
    name: string;
    method?: "GET" | "POST" | "PUT" | "DELETE";
    url?: string;
    /** An object is sent as JSON; a string is sent as-is. */
    body?: unknown;
    contentType?: string;
    status: number;
    code?: string;
    /** Expected `param`; undefined means "not checked", null means "no param". */
    param?: string | null;
    /** The message must match (names the field or the limit). */
    message?: RegExp;
}

const V1 = "/v1/embeddings";
const deep = (n: number) => "[".repeat(n) + "]".repeat(n);

const cases: Case[] = [
    // transport and body shape
    { name: "malformed JSON", body: '{"input": "a",', status: 400, code: "malformed_body", message: /JSON/ },
    { name: "text/plain body", body: "hello", contentType: "text/plain", status: 415, code: "unsupported_media_type" },
    { name: "form-encoded body", body: "input=a", contentType: "application/x-www-form-urlencoded", status: 415 },
    { name: "empty JSON body", body: "", status: 400, code: "malformed_body" },
    { name: "JSON array instead of object", body: [], status: 400, code: "invalid_request" },
    { name: "JSON string instead of object", body: '"input"', status: 400, code: "invalid_request" },
    { name: "JSON null", body: "null", status: 400 },
    { name: "__proto__ pollution attempt", body: '{"__proto__": {"polluted": true}, "input": "a"}', status: 400 },
    { name: "deeply nested arrays", body: `{"input": ${deep(5000)}}`, status: 400, param: "input" },
    { name: "very deeply nested arrays", body: `{"input": ${deep(30000)}}`, status: 400 },
    // input field
    { name: "missing input", body: { model: "bert-tiny" }, status: 400, param: "input", message: /input/ },
    { name: "input is a number", body: { input: 5 }, status: 400, param: "input" },
    { name: "input is null", body: { input: null }, status: 400, param: "input" },
    { name: "input is an object", body: { input: { text: "a" } }, status: 400, param: "input" },
    { name: "input is a boolean", body: { input: true }, status: 400, param: "input" },
    { name: "empty string", body: { input: "" }, status: 400, param: "input[0]", message: /empty/ },
    { name: "empty array", body: { input: [] }, status: 400, param: "input", message: /at least one/ },
    { name: "empty string inside array", body: { input: ["a", ""] }, status: 400, param: "input[1]" },
    { name: "mixed strings and numbers", body: { input: ["a", 5] }, status: 400, param: "input" },
    { name: "mixed token arrays and strings", body: { input: [[1, 2], "a"] }, status: 400, param: "input" },
    { name: "negative token id", body: { input: [101, -1, 102] }, status: 400, param: "input[1]" },
    { name: "fractional token id", body: { input: [101, 1.5] }, status: 400, param: "input" },
    { name: "token id past the vocabulary", body: { input: [101, 99999999] }, status: 400, param: "input[0][1]", message: /token id/ },
    { name: "token id past the vocabulary in a nested array", body: { input: [[101], [102, 40000]] }, status: 400, param: "input[1][1]" },
    { name: "empty token array", body: { input: [[]] }, status: 400, param: "input[0]" },
    { name: "lone high surrogate", body: '{"input": "abc\\ud800def"}', status: 400, param: "input[0]", message: /surrogate/ },
    { name: "lone low surrogate", body: '{"input": ["ok", "\\udc00"]}', status: 400, param: "input[1]", message: /surrogate/ },
    { name: "NUL byte", body: '{"input": "a\\u0000b"}', status: 400, param: "input[0]", message: /NUL/ },
    // options
    { name: "unknown encoding_format", body: { input: "a", encoding_format: "binary" }, status: 400, param: "encoding_format", message: /float|base64/ },
    { name: "dimensions 0", body: { input: "a", dimensions: 0 }, status: 400, param: "dimensions" },
    { name: "negative dimensions", body: { input: "a", dimensions: -5 }, status: 400, param: "dimensions" },
    { name: "fractional dimensions", body: { input: "a", dimensions: 1.5 }, status: 400, param: "dimensions" },
    { name: "dimensions as a string", body: { input: "a", dimensions: "64" }, status: 400, param: "dimensions" },
    { name: "dimensions above the model's", body: { input: "a", dimensions: 100000 }, status: 400, param: "dimensions", message: /128/ },
    { name: "input_type unknown", body: { input: "a", input_type: "passage" }, status: 400, param: "input_type" },
    { name: "prompt_name unknown", body: { input: "a", prompt_name: "nope" }, status: 400, param: "prompt_name" },
    { name: "truncate not a boolean", body: { input: "a", truncate: "yes" }, status: 400, param: "truncate" },
    { name: "normalize not a boolean", body: { input: "a", normalize: "no" }, status: 400, param: "normalize" },
    // models
    { name: "model is a number", body: { input: "a", model: 123 }, status: 400, param: "model" },
    { name: "unknown model", body: { input: "a", model: "gpt-9" }, status: 404, code: "model_not_found", param: "model" },
    { name: "path-like model name", body: { input: "a", model: "../../etc/passwd" }, status: 404, code: "model_not_found" },
    { name: "absolute path as model", body: { input: "a", model: "/etc/passwd" }, status: 404, code: "model_not_found" },
    { name: "very long model name", body: { input: "a", model: "m".repeat(300) }, status: 400, param: "model" },
    { name: "path-like model in the URL", method: "GET", url: "/v1/models/..%2F..%2Fetc%2Fpasswd", status: 404 },
    // limits
    { name: "too many inputs", body: { input: Array.from({ length: 17 }, () => "a") }, status: 413, code: "too_many_inputs", param: "input", message: /16/ },
    { name: "body over the size limit", body: { input: "a ".repeat(40_000) }, status: 413, code: "body_too_large", message: /65536/ },
    { name: "text over the character limit", body: { input: "b".repeat(5000) }, status: 413, code: "input_too_long", param: "input[0]", message: /4000/ },
    { name: "text over the token limit", body: { input: "word ".repeat(300) }, status: 413, code: "input_too_long", param: "input[0]", message: /tokens/ },
    { name: "token ids over the token limit", body: { input: Array.from({ length: 300 }, () => 1000) }, status: 413, code: "input_too_long", param: "input[0]" },
    // seed routes
    { name: "/embed without text", url: "/embed", body: {}, status: 400, param: "text" },
    { name: "/embed with numeric text", url: "/embed", body: { text: 42 }, status: 400, param: "text" },
    { name: "/embed with empty text", url: "/embed", body: { text: "" }, status: 400, param: "text[0]" },
    { name: "/embed/batch with texts not an array", url: "/embed/batch", body: { texts: "a" }, status: 400, param: "texts" },
    { name: "/embed/batch with no texts", url: "/embed/batch", body: { texts: [] }, status: 400, param: "texts" },
    { name: "/embed/batch with numbers", url: "/embed/batch", body: { texts: [1, 2] }, status: 400, param: "texts[0]" },
    { name: "/embed/batch with too many texts", url: "/embed/batch", body: { texts: Array.from({ length: 20 }, () => "x") }, status: 413, param: "texts" },
    { name: "/similarity with both forms", url: "/similarity", body: { text1: "a", text2: "b", query: "q", documents: ["d"] }, status: 400 },
    { name: "/similarity with empty documents", url: "/similarity", body: { query: "q", documents: [] }, status: 400, param: "documents" },
    { name: "/similarity without documents", url: "/similarity", body: { query: "q" }, status: 400, param: "documents" },
    { name: "/similarity with nothing", url: "/similarity", body: {}, status: 400 },
    // routing
    { name: "GET on a POST route", method: "GET", url: V1, status: 405, code: "method_not_allowed" },
    { name: "unknown route", method: "GET", url: "/v2/embeddings", status: 404, code: "route_not_found" },
    { name: "DELETE on a model", method: "DELETE", url: "/v1/models/bert-tiny", status: 405 },
];

describe("bad-input suite", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({
            models: [{ preset: "bert-tiny", id: "bert-tiny", contextSize: 128 }],
            config: { limits: { maxInputsPerRequest: 16, maxInputChars: 4000 }, server: { bodyLimit: 65536 } },
        });
    });
    after(() => server.close());

    it("has at least 40 cases", () => assert.ok(cases.length >= 40, `${cases.length} cases`));

    for (const c of cases) {
        it(`${c.name} -> ${c.status}`, async () => {
            const method = c.method ?? "POST";
            const payload = c.body === undefined ? undefined : typeof c.body === "string" ? c.body : JSON.stringify(c.body);
            const res = await server.inject({
                method,
                url: c.url ?? V1,
                payload,
                headers: payload !== undefined ? { "content-type": c.contentType ?? "application/json" } : {},
            });
            assert.equal(res.statusCode, c.status, `body: ${res.body.slice(0, 300)}`);
            assert.match(String(res.headers["content-type"]), /application\/json/);
            const body = res.json();
            assert.deepEqual(Object.keys(body), ["error"]);
            assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
            assert.equal(typeof body.error.message, "string");
            assert.ok(body.error.message.length > 5);
            assert.doesNotMatch(body.error.message, /\n\s+at /, "no stack traces");
            if (c.code) assert.equal(body.error.code, c.code);
            if (c.param !== undefined) assert.equal(body.error.param, c.param);
            if (c.message) assert.match(body.error.message, c.message);
            // The server must still serve correctly after every bad input.
            const ok = await server.post(V1, { input: "still alive" });
            assert.equal(ok.statusCode, 200);
        });
    }

    it("a malformed request never pollutes Object.prototype", () => {
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
    });
});
