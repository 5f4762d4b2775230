/**
 * Typed errors, one class per code of the server's table (SPEC §2, src/openplatform/errors.py).
 *
 * Every error the SDK throws is an `OpenPlatformError` carrying the envelope's `code`, `msg` and
 * `error`. Failures found on the app's side (a state that does not match, a bad launch signature,
 * the network) use the code the server would use for the same situation, so callers handle both
 * the same way. The classes and codes are those of the Python SDK (openplatform_client.errors).
 */

export interface ErrorDetails {
  code?: number;
  error?: string;
  /** HTTP status of the answer; null for failures found by the SDK itself. */
  status?: number | null;
  /** The parameter a validation error is about. */
  field?: string | null;
  headers?: Record<string, string>;
  cause?: unknown;
}

/** Base of every error the SDK throws. */
export class OpenPlatformError extends Error {
  static readonly defaultCode: number = 50001;
  static readonly defaultError: string = "server_error";

  /** The envelope's `code` (the first three digits are the HTTP status). */
  readonly code: number;
  /** The envelope's human sentence. */
  readonly msg: string;
  /** The RFC 6749 error string (`invalid_grant`, ...). */
  readonly error: string;
  readonly status: number | null;
  readonly field: string | null;
  /** The answer's headers, names in lower case. */
  readonly headers: Record<string, string>;

  constructor(msg: string, details: ErrorDetails = {}) {
    const kind = new.target as typeof OpenPlatformError;
    const code = details.code ?? kind.defaultCode;
    const error = details.error || kind.defaultError;
    const where = details.field ? ` (field ${details.field})` : "";
    super(`${code} ${error}: ${msg}${where}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = kind.name;
    this.code = code;
    this.msg = msg;
    this.error = error;
    this.status = details.status ?? null;
    this.field = details.field ?? null;
    this.headers = { ...(details.headers ?? {}) };
  }
}

/** 40001 invalid_request: a parameter is missing or malformed; `field` names it. */
export class ValidationError extends OpenPlatformError {
  static override readonly defaultCode = 40001;
  static override readonly defaultError = "invalid_request";
}

export class UnsupportedGrantType extends OpenPlatformError {
  static override readonly defaultCode = 40002;
  static override readonly defaultError = "unsupported_grant_type";
}

export class UnsupportedResponseType extends OpenPlatformError {
  static override readonly defaultCode = 40003;
  static override readonly defaultError = "unsupported_response_type";
}

export class InvalidScopeError extends OpenPlatformError {
  static override readonly defaultCode = 40004;
  static override readonly defaultError = "invalid_scope";
}

export class InvalidRedirectUriError extends OpenPlatformError {
  static override readonly defaultCode = 40005;
  static override readonly defaultError = "invalid_redirect_uri";
}

/** 40006: the code (or refresh token) is unknown, expired, used or revoked. */
export class InvalidGrantError extends OpenPlatformError {
  static override readonly defaultCode = 40006;
  static override readonly defaultError = "invalid_grant";
}

/** 40101: wrong appId or secret, or the app is suspended. */
export class InvalidClientError extends OpenPlatformError {
  static override readonly defaultCode = 40101;
  static override readonly defaultError = "invalid_client";
}

/** 40102: the access token is unknown, expired or revoked (after one renewal and retry). */
export class InvalidTokenError extends OpenPlatformError {
  static override readonly defaultCode = 40102;
  static override readonly defaultError = "invalid_token";
}

export class AccessDenied extends OpenPlatformError {
  static override readonly defaultCode = 40301;
  static override readonly defaultError = "access_denied";
}

export class IpNotAllowed extends OpenPlatformError {
  static override readonly defaultCode = 40302;
  static override readonly defaultError = "ip_not_allowed";
}

export class InsufficientScope extends OpenPlatformError {
  static override readonly defaultCode = 40303;
  static override readonly defaultError = "insufficient_scope";
}

/** 40401: the object does not exist or is outside the token's reach. */
export class NotFound extends OpenPlatformError {
  static override readonly defaultCode = 40401;
  static override readonly defaultError = "not_found";
}

export class MethodNotAllowed extends OpenPlatformError {
  static override readonly defaultCode = 40501;
  static override readonly defaultError = "method_not_allowed";
}

/** 40901: the object changed since the version you sent; reload and retry. */
export class Conflict extends OpenPlatformError {
  static override readonly defaultCode = 40901;
  static override readonly defaultError = "conflict";
}

/** 42901: slow down; `retryAfter` is the server's Retry-After in seconds. */
export class RateLimited extends OpenPlatformError {
  static override readonly defaultCode = 42901;
  static override readonly defaultError = "rate_limited";

  get retryAfter(): number | null {
    const value = this.headers["retry-after"] ?? "";
    return /^\d+(\.\d+)?$/.test(value) ? Number(value) : null;
  }
}

/** 43101: the request's headers are larger than 16 KiB in total. */
export class RequestHeadersTooLarge extends OpenPlatformError {
  static override readonly defaultCode = 43101;
  static override readonly defaultError = "request_headers_too_large";
}

export class ServerError extends OpenPlatformError {
  static override readonly defaultCode = 50001;
  static override readonly defaultError = "server_error";
}

export class ServiceUnavailable extends OpenPlatformError {
  static override readonly defaultCode = 50301;
  static override readonly defaultError = "temporarily_unavailable";
}

/** The server could not be reached or the connection failed. */
export class TransportError extends ServiceUnavailable {}

/** The request exceeded the client's timeout. */
export class RequestTimeout extends TransportError {}

/**
 * A call that needs a customer got `null`, `undefined`, an empty or blank id (or no string); thrown
 * before any request is sent. An app opened for a whole SPE has no customer (`launch.customerId` is
 * null): list the SPE's customers (`client.customers.list({ xspe: launch.xspe })`) and pick one, or
 * call the SPE-level APIs with the app token. `field` names the parameter (`customerId`).
 */
export class CustomerIdRequired extends ValidationError {}

/** The callback's `state` is not the one this app issued (RFC 6749 §10.12: CSRF). */
export class StateMismatch extends OpenPlatformError {
  static override readonly defaultCode = 40001;
  static override readonly defaultError = "invalid_request";
}

/** A signed launch or webhook failed verification (forged, altered, stale or for another app). */
export class InvalidSignature extends OpenPlatformError {
  static override readonly defaultCode = 40001;
  static override readonly defaultError = "invalid_request";
}

/**
 * The customer's tokens are gone: the refresh was refused (revoked family, uninstall, theft
 * detected) or none were ever stored. Send the customer through `connectUrl` again.
 */
export class ReauthorizationRequired extends OpenPlatformError {
  static override readonly defaultCode = 40006;
  static override readonly defaultError = "invalid_grant";

  readonly customerId: string | null;

  constructor(msg: string, details: ErrorDetails & { customerId?: string | null } = {}) {
    super(msg, details);
    this.customerId = details.customerId ?? null;
  }
}

type ErrorClass = typeof OpenPlatformError;

/** The class thrown for each `error` string of the server's table. */
export const BY_ERROR: ReadonlyMap<string, ErrorClass> = new Map(
  [
    ValidationError, UnsupportedGrantType, UnsupportedResponseType, InvalidScopeError, InvalidRedirectUriError,
    InvalidGrantError, InvalidClientError, InvalidTokenError, AccessDenied, IpNotAllowed, InsufficientScope,
    NotFound, MethodNotAllowed, Conflict, RateLimited, RequestHeadersTooLarge, ServerError, ServiceUnavailable,
  ].map((kind): [string, ErrorClass] => [kind.defaultError, kind]),
);

/** The typed error for an error envelope (looked up by `error`, then by `code`). */
export function fromEnvelope(
  body: Record<string, unknown>,
  status: number,
  headers: Record<string, string>,
): OpenPlatformError {
  const code = typeof body.code === "number" && Number.isInteger(body.code) ? body.code : undefined;
  const error = typeof body.error === "string" ? body.error : "";
  let kind = BY_ERROR.get(error) ?? [...BY_ERROR.values()].find((k) => k.defaultCode === code);
  if (kind === undefined) kind = status >= 500 ? ServerError : OpenPlatformError;
  const msg = typeof body.msg === "string" && body.msg ? body.msg : "The server refused the request.";
  const field = typeof body.field === "string" && body.field ? body.field : null;
  return new kind(msg, { code: code ?? kind.defaultCode, error: error || kind.defaultError, status, field, headers });
}
