import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ensureTestModel } from "./fixtures/testModels.js";
import { spawnServer } from "./helpers/spawnServer.js";

describe("graceful shutdown", () => {
    it("SIGTERM under load: every in-flight request completes, /health turns 503, exit 0", async () => {
        const model = await ensureTestModel("bert-tiny");
        const server = await spawnServer(["--model", model, "--server.drain-timeout-ms", "20000"]);
        const post = (text: string) =>
            fetch(`${server.url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: [text, `${text} again`] }) });
        // Fill the queue with more work than the engine finishes in the time before SIGTERM.
        const inFlight = Array.from({ length: 24 }, (_, i) => post(`in-flight request ${i} ${"padding words ".repeat(40)}`));
        // Long enough for every request to reach the server, far shorter than the queue takes.
        await new Promise((r) => setTimeout(r, 300));
        const exited = server.stop("SIGTERM");
        const results = await Promise.allSettled(inFlight);
        const statuses = results.map((r) => (r.status === "fulfilled" ? r.value.status : String(r.reason)));
        assert.deepEqual(statuses.filter((s) => s !== 200), [], "every accepted request finished with 200");
        for (const r of results) {
            if (r.status !== "fulfilled") continue;
            const body = (await r.value.json()) as { data: unknown[] };
            assert.equal(body.data.length, 2);
        }
        assert.equal(await exited, 0);
        const messages = server.logs.map((l) => l.msg);
        assert.ok(messages.includes("shutting down: draining in-flight requests"));
        assert.ok(messages.includes("shutdown complete"));
        // After exit nothing listens any more.
        await assert.rejects(fetch(`${server.url}/health`));
    });

    it("/health reports draining (503) while shutdown waits for in-flight work", async () => {
        const model = await ensureTestModel("bert-tiny");
        const server = await spawnServer(["--model", model]);
        const inFlight = Array.from({ length: 10 }, (_, i) =>
            fetch(`${server.url}/embed/batch`, {
                method: "POST",
                headers: { "content-type": "application/json", connection: "keep-alive" },
                body: JSON.stringify({ texts: Array.from({ length: 8 }, (_, j) => `text ${i}-${j} ${"more words ".repeat(25)}`) }),
            }),
        );
        await new Promise((r) => setTimeout(r, 300));
        server.child.kill("SIGTERM");
        await server.waitForLog("shutting down: draining in-flight requests");
        // New connections are refused once the listener closes; a health probe that still gets
        // through sees 503. Either way a load balancer moves away.
        const probe = await fetch(`${server.url}/health`).then(
            (r) => r.status,
            () => "refused",
        );
        assert.ok(probe === 503 || probe === "refused", `health during drain: ${probe}`);
        const statuses = (await Promise.all(inFlight)).map((r) => r.status);
        assert.ok(statuses.every((s) => s === 200), `statuses ${statuses}`);
        assert.equal(await server.stop(), 0);
    });
});
