import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
    ApiError,
    BodyTooLargeError,
    InternalError,
    InvalidRequestError,
    MalformedBodyError,
    MethodNotAllowedError,
    RouteNotFoundError,
    UnsupportedMediaTypeError,
    isApiError,
} from "../core/errors.js";
import type { Metrics } from "../observability/metrics.js";

/** "/input/3/0" -> "input[3][0]": the way clients name fields. */
function paramFromPath(instancePath: string): string | null {
    const parts = instancePath.split("/").filter(Boolean);
    if (parts.length === 0) return null;
    return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

interface ValidationItem {
    instancePath?: string;
    message?: string;
    keyword?: string;
    params?: Record<string, unknown>;
}

function fromValidation(err: FastifyError & { validation?: ValidationItem[]; validationContext?: string }): ApiError {
    const first: ValidationItem = err.validation?.[0] ?? {};
    let param = paramFromPath(first.instancePath ?? "");
    // Unknown-key and missing-field errors point at the parent; name the key itself.
    const keys = first.params?.keys;
    if (Array.isArray(keys) && keys.length) param = param ? `${param}.${keys[0]}` : String(keys[0]);
    const where = param ?? err.validationContext ?? "body";
    let message = first.message ?? err.message;
    if (first.keyword === "invalid_type" && /received undefined/i.test(message)) message = "is required";
    return new InvalidRequestError(`${where}: ${message}`, { param: param ?? null });
}

/** Maps anything thrown to the catalogue in core/errors.ts. */
export function toApiError(err: unknown, bodyLimit?: number): ApiError {
    if (isApiError(err)) return err;
    const e = err as FastifyError & { validation?: ValidationItem[]; type?: string; status?: number; statusCode?: number };
    if (e?.validation) return fromValidation(e);
    switch (e?.code) {
        case "FST_ERR_CTP_BODY_TOO_LARGE":
            return new BodyTooLargeError(`request body is larger than the limit of ${bodyLimit ?? "server.bodyLimit"} bytes (server.bodyLimit)`);
        case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
            return new UnsupportedMediaTypeError("Content-Type must be application/json");
        case "FST_ERR_CTP_EMPTY_JSON_BODY":
            return new MalformedBodyError("request body is empty; send a JSON object");
        case "FST_ERR_CTP_INVALID_JSON_BODY":
        case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
            return new MalformedBodyError("request body is not valid JSON");
    }
    if (e instanceof SyntaxError || e?.statusCode === 400) return new MalformedBodyError("request body is not valid JSON");
    if (e?.statusCode === 413) return new BodyTooLargeError(`request body is larger than the limit of ${bodyLimit ?? "server.bodyLimit"} bytes (server.bodyLimit)`);
    if (e?.statusCode === 415) return new UnsupportedMediaTypeError("Content-Type must be application/json");
    return new InternalError("internal server error", { cause: err });
}

export function errorBody(err: ApiError) {
    return { error: { message: err.message, type: err.type, code: err.code, param: err.param } };
}

export function sendError(reply: FastifyReply, err: ApiError) {
    if (err.retryAfterSeconds !== undefined) void reply.header("retry-after", String(err.retryAfterSeconds));
    return reply.code(err.status).type("application/json").send(errorBody(err));
}

/** The one place errors become HTTP responses. 5xx bodies never carry internals. */
export function registerErrorHandling(app: FastifyInstance, metrics: Metrics, bodyLimit: number) {
    // Route patterns by method, to tell "wrong method" (405) from "no such route" (404).
    const patterns: { method: string; regex: RegExp }[] = [];
    app.addHook("onRoute", (route) => {
        const regex = new RegExp(`^${route.url.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z_]\w*/g, "[^/]+")}/?$`);
        for (const method of [route.method].flat()) patterns.push({ method, regex });
    });
    app.setErrorHandler((err: unknown, request: FastifyRequest, reply: FastifyReply) => {
        const apiError = toApiError(err, bodyLimit);
        metrics.errors.inc({ code: apiError.code });
        if (apiError.status >= 500) request.log.error({ err, code: apiError.code }, "request failed");
        else request.log.info({ code: apiError.code, param: apiError.param, msg: apiError.message }, "request rejected");
        return sendError(reply, apiError);
    });
    app.setNotFoundHandler((request, reply) => {
        const path = request.url.split("?")[0]!;
        const allowed = [...new Set(patterns.filter((p) => p.regex.test(path)).map((p) => p.method))];
        if (allowed.length) void reply.header("allow", allowed.join(", "));
        const err = allowed.length
            ? new MethodNotAllowedError(`${request.method} is not allowed on ${path}; use ${allowed.join(" or ")}`)
            : new RouteNotFoundError(`no route ${request.method} ${path}`);
        metrics.errors.inc({ code: err.code });
        return sendError(reply, err);
    });
}
