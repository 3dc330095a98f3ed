/**
 * Errors raised while resolving or downloading a model. Each carries a stable
 * `code` so the CLI, `serve` and tests can branch on it without parsing text.
 * No message ever contains an access token: tokens only travel in headers.
 */

export type ModelErrorCode =
    | "MODEL_SPEC_INVALID"
    | "MODEL_LOCAL_NOT_FOUND"
    | "MODEL_HUB_NOT_FOUND"
    | "MODEL_QUANT_NOT_FOUND"
    | "MODEL_QUANT_AMBIGUOUS"
    | "MODEL_AUTH_REQUIRED"
    | "MODEL_ACCESS_DENIED"
    | "MODEL_HUB_UNREACHABLE"
    | "MODEL_CHECKSUM_MISMATCH"
    | "MODEL_SIZE_MISMATCH"
    | "MODEL_DOWNLOAD_FAILED"
    | "MODEL_DOWNLOAD_ABORTED"
    | "MODEL_CACHE_BUSY";

export abstract class ModelError extends Error {
    abstract readonly code: ModelErrorCode;

    constructor(message: string, options?: { cause?: unknown }) {
        super(message, options?.cause === undefined ? undefined : { cause: options.cause });
        this.name = new.target.name;
    }
}

/** The spec string is not `hf:user/repo[:quant]`, `hf:user/repo/file.gguf`, a URL or a path. */
export class InvalidModelSpecError extends ModelError {
    readonly code = "MODEL_SPEC_INVALID";
}

/** A local path was given but nothing (or not every split part) is there. */
export class LocalModelNotFoundError extends ModelError {
    readonly code = "MODEL_LOCAL_NOT_FOUND";
}

/** The hub answered 404 for the repository or the file. */
export class HubNotFoundError extends ModelError {
    readonly code = "MODEL_HUB_NOT_FOUND";
}

/** No GGUF file in the repository matches the requested quantization. */
export class QuantNotFoundError extends ModelError {
    readonly code = "MODEL_QUANT_NOT_FOUND";
    constructor(message: string, readonly candidates: string[]) {
        super(message);
    }
}

/** Several GGUF files match (or no quant was given and the repo has several). */
export class QuantAmbiguousError extends ModelError {
    readonly code = "MODEL_QUANT_AMBIGUOUS";
    constructor(message: string, readonly candidates: string[]) {
        super(message);
    }
}

/** 401: the repository is gated or private and no (valid) token was sent. */
export class HubAuthRequiredError extends ModelError {
    readonly code = "MODEL_AUTH_REQUIRED";
}

/** 403: the token is valid but has no access (e.g. the model's terms were not accepted). */
export class HubAccessDeniedError extends ModelError {
    readonly code = "MODEL_ACCESS_DENIED";
}

/** Connection refused, DNS failure, reset before any answer: the hub cannot be reached. */
export class HubUnreachableError extends ModelError {
    readonly code = "MODEL_HUB_UNREACHABLE";
}

/** Downloaded bytes do not hash to what the hub published; the bad data has been deleted. */
export class ChecksumMismatchError extends ModelError {
    readonly code = "MODEL_CHECKSUM_MISMATCH";
    constructor(
        message: string,
        readonly file: string,
        readonly expected: string,
        readonly actual: string,
    ) {
        super(message);
    }
}

/** Downloaded size differs from the published size; the bad data has been deleted. */
export class SizeMismatchError extends ModelError {
    readonly code = "MODEL_SIZE_MISMATCH";
    constructor(
        message: string,
        readonly file: string,
        readonly expected: number,
        readonly actual: number,
    ) {
        super(message);
    }
}

/** The transfer failed for another reason (HTTP error, retries exhausted, disk error). */
export class DownloadFailedError extends ModelError {
    readonly code = "MODEL_DOWNLOAD_FAILED";
}

/** The caller's AbortSignal fired; any `.partial` file is kept so the next attempt resumes. */
export class DownloadAbortedError extends ModelError {
    readonly code = "MODEL_DOWNLOAD_ABORTED";
}

/** Another live process holds the download lock and did not finish within the wait limit. */
export class CacheBusyError extends ModelError {
    readonly code = "MODEL_CACHE_BUSY";
}
