/** The wire side of the SDK without I/O: request bodies, envelopes, the connect URL, PKCE. */

import { createHash, createHmac, randomBytes } from "node:crypto";

import { CustomerIdRequired, fromEnvelope, type OpenPlatformError, ReauthorizationRequired, ServerError } from "./errors.js";
import { Token } from "./models.js";
import { derivedKey } from "./signing.js";

export const INVALID_TOKEN = 40102;
export const PENDING_TTL = 600; // seconds: the longest code lifetime the server allows (SPEC §2.1)
export const PENDING_MAX = 10_000;

/** One HTTP answer, read whole. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export type Envelope = Record<string, unknown> & { code: number };

/** The decoded envelope; a non-envelope answer (a proxy's 502 page) becomes `ServerError`. */
/**
 * `customerId` itself when it is a non-blank string, else `CustomerIdRequired`. Guards every place a
 * customer id goes into a URL path, a connect URL or a token-store key: `undefined` would otherwise
 * travel as `/api/spe/customer/undefined`, and `null` silently stand for the app token.
 */
export function requiredCustomerId(customerId: unknown, parameter = "customerId"): string {
  if (typeof customerId === "string" && customerId.trim() !== "") return customerId;
  const given = customerId === undefined ? "undefined" : JSON.stringify(customerId) ?? String(customerId);
  throw new CustomerIdRequired(
    `${parameter} is required (got ${given}). An app opened for a whole SPE has no customer (launch.customerId ` +
      "is null): list the SPE's customers with client.customers.list({ xspe: launch.xspe }) and pick one, or " +
      "call the SPE-level APIs with the app token.",
    { field: parameter },
  );
}

export function envelope(answer: Answer): Envelope {
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    body = undefined;
  }
  const code = (body as { code?: unknown } | undefined)?.code;
  if (typeof body !== "object" || body === null || typeof code !== "number" || !Number.isInteger(code)) {
    throw new ServerError(`HTTP ${answer.status} without an openplatform envelope.`, { status: answer.status });
  }
  return body as Envelope;
}

export function isInvalidToken(body: Envelope): boolean {
  return body.code === INVALID_TOKEN;
}

/** The `result` of a success envelope, or the typed error (only `code` decides, SPEC §2). */
export function resultOf(answer: Answer, body: Envelope = envelope(answer)): unknown {
  if (body.code !== 0) throw fromEnvelope(body, answer.status, answer.headers);
  return body.result;
}

export function tokenFrom(result: unknown, sentAt: number, customerId: string | null, xspe: string | null): Token {
  const r = (result ?? {}) as Record<string, unknown>;
  if (typeof r.access_token !== "string") throw new ServerError("The token answer has no access_token.");
  const expiresIn = typeof r.expires_in === "number" ? r.expires_in : Number(r.expires_in ?? 0);
  return new Token({
    accessToken: r.access_token, expiresIn, expiresAt: sentAt + expiresIn,
    refreshToken: typeof r.refresh_token === "string" ? r.refresh_token : null,
    scope: typeof r.scope === "string" ? r.scope : null, customerId, xspe,
  });
}

// ------------------------------------------------------------ token requests

export function appTokenForm(appId: string, secret: string): Record<string, string> {
  return { app_id: appId, secret, grant_type: "client_credential" };
}

export function refreshForm(appId: string, secret: string, refreshToken: string): Record<string, string> {
  // The secret is optional on this endpoint (SPEC §2.3) but verified when sent; sending it keeps
  // working on servers that require it.
  return { app_id: appId, secret, refresh_token: refreshToken, grant_type: "refresh_code" };
}

export function exchangeForm(
  appId: string, secret: string, code: string, redirectUri: string | null, verifier: string | null,
): Record<string, string> {
  const form: Record<string, string> = { app_id: appId, secret, code, grant_type: "authorization_code" };
  if (redirectUri) form.redirect_uri = redirectUri;
  if (verifier) form.code_verifier = verifier;
  return form;
}

/** Body of RFC 7662 introspection and RFC 7009 revocation. */
export function credentialsForm(appId: string, secret: string, token: string): Record<string, string> {
  return { app_id: appId, secret, token };
}

// ------------------------------------------------------------ connect

export function newState(): string {
  return randomBytes(24).toString("base64url");
}

/**
 * RFC 7636 §4.1 code_verifier, derived from the state with a key only this app has (the same
 * derivation as the Python SDK): any process of the app that sees the callback's state can
 * recompute it, and a code injected into another browser's callback fails.
 */
export function pkceVerifier(secret: string, state: string): string {
  return createHmac("sha256", derivedKey(secret, "pkce")).update(state).digest("base64url");
}

/** RFC 7636 §4.2, S256. */
export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier).digest("base64url");
}

/** SPEC §2.1: `/oauth/connect` with the documented parameters (and PKCE when enabled). */
export function connectUrl(
  baseUrl: string, appId: string, params: Record<string, string>, state: string, verifier: string | null,
): string {
  const query = new URLSearchParams({ app_id: appId, response_type: "code", ...params, state });
  if (verifier) {
    query.set("code_challenge", pkceChallenge(verifier));
    query.set("code_challenge_method", "S256");
  }
  return `${baseUrl}/oauth/connect?${query.toString()}`;
}

/** What the SDK remembers between `connectUrl` and `exchangeCode`. */
export interface Pending {
  xspe: string;
  customerId: string;
  redirectUri: string;
  createdAt: number;
}

/** States handed out by `connectUrl`, bounded in number and age. */
export class PendingStates {
  private readonly items = new Map<string, Pending>();

  constructor(private readonly clock: () => number) {}

  add(state: string, xspe: string, customerId: string, redirectUri: string): void {
    const now = this.clock();
    this.items.set(state, { xspe, customerId, redirectUri, createdAt: now });
    for (const [key, pending] of this.items) {
      if (this.items.size <= PENDING_MAX && pending.createdAt >= now - PENDING_TTL) break;
      this.items.delete(key); // oldest first: a Map keeps insertion order
    }
  }

  pop(state: string): Pending | undefined {
    const pending = this.items.get(state);
    this.items.delete(state);
    if (pending === undefined || pending.createdAt < this.clock() - PENDING_TTL) return undefined;
    return pending;
  }
}

/** The refresh was refused (revoked family, uninstall, theft detected): connect again. */
export function reauthorization(customerId: string, refused: OpenPlatformError): ReauthorizationRequired {
  return new ReauthorizationRequired(
    `The refresh token of customer ${customerId} was refused (${refused.msg}); ` +
      "send the customer through connectUrl again.",
    { customerId, code: refused.code, error: refused.error, status: refused.status, cause: refused },
  );
}
