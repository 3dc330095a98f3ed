import type { FastifyInstance } from "fastify";
import { RequestCancelledError, RequestTimeoutError } from "../../core/errors.js";
import type { Metrics } from "../../observability/metrics.js";

declare module "fastify" {
    interface FastifyRequest {
        /** Aborts when the client disconnects or the request times out. */
        cancelSignal: AbortSignal;
        /** Filled by embedding routes for the access log and metrics. */
        usage?: { inputs: number; tokens: number; model: string };
    }
}

/** Races work against the request's signal, so a timed-out request answers at once. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        work.then(
            (v) => {
                signal.removeEventListener("abort", onAbort);
                resolve(v);
            },
            (e) => {
                signal.removeEventListener("abort", onAbort);
                reject(e);
            },
        );
    });
}

/**
 * Per-request plumbing: an AbortSignal tied to the client connection and the timeout,
 * one structured access-log line, and the HTTP metrics.
 */
export function registerRequestContext(app: FastifyInstance, options: { metrics: Metrics; timeoutMs: number }) {
    const { metrics, timeoutMs } = options;
    app.decorateRequest("cancelSignal", null as unknown as AbortSignal);
    app.decorateRequest("usage", undefined);

    app.addHook("onRequest", async (request, reply) => {
        const controller = new AbortController();
        request.cancelSignal = controller.signal;
        const timer = setTimeout(
            () => controller.abort(new RequestTimeoutError(`request took longer than server.requestTimeoutMs = ${timeoutMs} ms`)),
            timeoutMs,
        );
        timer.unref();
        // 'close' before the response finished means the client went away: drop its queued work.
        reply.raw.once("close", () => {
            clearTimeout(timer);
            if (!reply.raw.writableFinished) controller.abort(new RequestCancelledError("client disconnected"));
        });
    });

    app.addHook("onResponse", async (request, reply) => {
        const route = request.routeOptions.url ?? "unmatched";
        const labels = { route, method: request.method, status: String(reply.statusCode) };
        const seconds = reply.elapsedTime / 1000;
        metrics.httpRequests.inc(labels);
        metrics.httpDuration.observe(labels, seconds);
        request.log.info(
            {
                route,
                method: request.method,
                status: reply.statusCode,
                ms: Number(reply.elapsedTime.toFixed(2)),
                key: request.keyId,
                ...(request.usage ?? {}),
            },
            "request completed",
        );
    });
}
