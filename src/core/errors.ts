/**
 * The one catalogue of errors the server can answer with. Every layer throws these;
 * src/http/plugins/errorHandler.ts is the only place that turns them into HTTP.
 * Codes are stable API: clients and docs/errors.md rely on them.
 */

export type ErrorType =
    | "invalid_request_error"
    | "authentication_error"
    | "permission_error"
    | "not_found_error"
    | "rate_limit_error"
    | "overloaded_error"
    | "timeout_error"
    | "server_error";

export interface ApiErrorOptions {
    /** Request field the error is about, as a dotted path (e.g. "input[3]"). */
    param?: string | null;
    /** Seconds a client should wait before retrying (429/503). */
    retryAfterSeconds?: number;
    cause?: unknown;
}

export abstract class ApiError extends Error {
    abstract readonly code: string;
    abstract readonly status: number;
    abstract readonly type: ErrorType;
    readonly param: string | null;
    readonly retryAfterSeconds: number | undefined;

    constructor(message: string, options: ApiErrorOptions = {}) {
        super(message, options.cause === undefined ? undefined : { cause: options.cause });
        this.name = new.target.name;
        this.param = options.param ?? null;
        this.retryAfterSeconds = options.retryAfterSeconds;
    }
}

/** A field has the wrong type, shape or value. */
export class InvalidRequestError extends ApiError {
    readonly code = "invalid_request";
    readonly status = 400;
    readonly type = "invalid_request_error" as const;
}

/** The body is not parseable JSON. */
export class MalformedBodyError extends ApiError {
    readonly code = "malformed_body";
    readonly status = 400;
    readonly type = "invalid_request_error" as const;
}

export class UnsupportedMediaTypeError extends ApiError {
    readonly code = "unsupported_media_type";
    readonly status = 415;
    readonly type = "invalid_request_error" as const;
}

/** The request body exceeds server.bodyLimit. */
export class BodyTooLargeError extends ApiError {
    readonly code = "body_too_large";
    readonly status = 413;
    readonly type = "invalid_request_error" as const;
}

/** More inputs in one request than limits.maxInputsPerRequest. */
export class TooManyInputsError extends ApiError {
    readonly code = "too_many_inputs";
    readonly status = 413;
    readonly type = "invalid_request_error" as const;
}

/** An input has more tokens than the model's usable context and truncation is off. */
export class InputTooLongError extends ApiError {
    readonly code = "input_too_long";
    readonly status = 413;
    readonly type = "invalid_request_error" as const;
}

export class ModelNotFoundError extends ApiError {
    readonly code = "model_not_found";
    readonly status = 404;
    readonly type = "not_found_error" as const;
}

export class RouteNotFoundError extends ApiError {
    readonly code = "route_not_found";
    readonly status = 404;
    readonly type = "not_found_error" as const;
}

export class MethodNotAllowedError extends ApiError {
    readonly code = "method_not_allowed";
    readonly status = 405;
    readonly type = "invalid_request_error" as const;
}

export class UnauthorizedError extends ApiError {
    readonly code = "invalid_api_key";
    readonly status = 401;
    readonly type = "authentication_error" as const;
}

export class ForbiddenError extends ApiError {
    readonly code = "forbidden";
    readonly status = 403;
    readonly type = "permission_error" as const;
}

export class RateLimitedError extends ApiError {
    readonly code = "rate_limit_exceeded";
    readonly status = 429;
    readonly type = "rate_limit_error" as const;
}

/** The queue already holds limits.maxQueuedTokens; shedding load beats unbounded latency. */
export class QueueFullError extends ApiError {
    readonly code = "server_overloaded";
    readonly status = 429;
    readonly type = "overloaded_error" as const;
}

/** The model is still loading, or the server is draining. */
export class UnavailableError extends ApiError {
    readonly code = "service_unavailable";
    readonly status = 503;
    readonly type = "overloaded_error" as const;
}

export class RequestTimeoutError extends ApiError {
    readonly code = "request_timeout";
    readonly status = 504;
    readonly type = "timeout_error" as const;
}

/** The client went away; nothing is sent, but the work is dropped. */
export class RequestCancelledError extends ApiError {
    readonly code = "request_cancelled";
    readonly status = 499;
    readonly type = "invalid_request_error" as const;
}

/** An admin add/replace named a model that could not be loaded; the old one keeps serving. */
export class ModelLoadFailedError extends ApiError {
    readonly code = "model_load_failed";
    readonly status = 400;
    readonly type = "invalid_request_error" as const;
}

/** Loading this model would pass limits.modelMemoryFraction. */
export class InsufficientMemoryError extends ApiError {
    readonly code = "insufficient_memory";
    readonly status = 507;
    readonly type = "server_error" as const;
}

/** Anything unexpected inside the engine. Its message is never shown to clients. */
export class InternalError extends ApiError {
    readonly code = "internal_error";
    readonly status = 500;
    readonly type = "server_error" as const;
}

export function isApiError(err: unknown): err is ApiError {
    return err instanceof ApiError;
}
