import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
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

const STATE = Symbol("requestContext");
interface ContextState {
    controller: AbortController;
    timer: NodeJS.Timeout;
}
type WithState = FastifyRequest & { [STATE]?: ContextState; [REPLY]?: FastifyReply; [STARTED]?: number };
const REPLY = Symbol("reply");
const STARTED = Symbol("startedAt");

/**
 * Races work against the request's signal, so a timed-out or abandoned request answers at once.
 * Work that settles within the current turn (a cache hit) never creates the signal at all.
 */
export function untilAborted<T>(work: Promise<T>, request: FastifyRequest): Promise<T> {
    return new Promise<T>((resolve, reject) => {
        let settled = false;
        let detach: (() => void) | undefined;
        work.then(
            (v) => {
                settled = true;
                detach?.();
                resolve(v);
            },
            (e) => {
                settled = true;
                detach?.();
                reject(e);
            },
        );
        setImmediate(() => {
            if (settled) return;
            const signal = request.cancelSignal;
            if (signal.aborted) return reject(signal.reason);
            const onAbort = () => reject(signal.reason);
            signal.addEventListener("abort", onAbort, { once: true });
            detach = () => signal.removeEventListener("abort", onAbort);
        });
    });
}

/**
 * Per-request plumbing: an AbortSignal tied to the client connection and the timeout (created
 * only when a request actually waits, so cache hits pay nothing for it), one structured
 * access-log line, and the HTTP metrics.
 */
export function registerRequestContext(app: FastifyInstance, options: { metrics: Metrics; timeoutMs: number }) {
    const { metrics, timeoutMs } = options;
    app.decorateRequest("cancelSignal", {
        getter(this: WithState): AbortSignal {
            if (this[STATE]) return this[STATE].controller.signal;
            const controller = new AbortController();
            const remaining = Math.max(0, timeoutMs - (performance.now() - (this[STARTED] ?? performance.now())));
            const timer = setTimeout(
                () => controller.abort(new RequestTimeoutError(`request took longer than server.requestTimeoutMs = ${timeoutMs} ms`)),
                remaining,
            );
            timer.unref();
            this[STATE] = { controller, timer };
            // 'close' before the response finished means the client went away: drop its queued work.
            const raw = this[REPLY]?.raw;
            if (raw && (raw.destroyed || raw.socket?.destroyed) && !raw.writableFinished) {
                controller.abort(new RequestCancelledError("client disconnected"));
            }
            raw?.once("close", () => {
                clearTimeout(timer);
                if (!raw.writableFinished) controller.abort(new RequestCancelledError("client disconnected"));
            });
            return controller.signal;
        },
    });
    app.decorateRequest("usage", undefined);

    app.addHook("onRequest", async (request, reply) => {
        const r = request as WithState;
        r[STARTED] = performance.now();
        r[REPLY] = reply;
    });

    app.addHook("onResponse", async (request, reply) => {
        const state = (request as WithState)[STATE];
        if (state) clearTimeout(state.timer);
        const route = request.routeOptions.url ?? "unmatched";
        const labels = { route, method: request.method, status: String(reply.statusCode) };
        const seconds = reply.elapsedTime / 1000;
        metrics.httpRequests.inc(labels);
        metrics.httpDuration.observe(labels, seconds);
        // The access line's object is built only when it will be written (benchmarks run at warn).
        if (!(request.log as unknown as { isLevelEnabled(level: string): boolean }).isLevelEnabled("info")) return;
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
