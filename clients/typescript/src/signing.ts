/**
 * Signatures an app verifies with its secret: signed launches and webhooks (SPEC §3).
 *
 * The same scheme as the server and the Python SDK (openplatform_client.signing; docs/launch.md,
 * docs/webhooks.md). Keys are derived from the app secret, `HMAC-SHA256(secret, purpose)`, so a
 * signature never exposes the secret and a launch signature cannot pass as a webhook signature.
 *
 * - Launch: `signature = hex(HMAC-SHA256(HMAC-SHA256(secret, "launch"), canonical))` where the
 *   canonical string is `app_id`, `customer_id`, `timestamp`, `xspe` sorted by name and
 *   form-encoded like Python's `urlencode`. Older than 300 s (either way) is refused.
 * - Webhook: header `X-OpenPlatform-Signature: hex(HMAC-SHA256(HMAC-SHA256(secret, "webhook"),
 *   "<timestamp>.<raw body>"))` with `X-OpenPlatform-Timestamp`, and in the body the original
 *   platform's `signature = md5_hex("{app_id}:{secret}:{expiration_time}")`.
 */

import { createHash, createHmac, timingSafeEqual } from "node:crypto";

import { InvalidSignature } from "./errors.js";
import type { Launch, WebhookEvent } from "./models.js";

export const LAUNCH_MAX_AGE = 300;
export const LAUNCH_FIELDS = ["app_id", "customer_id", "timestamp", "xspe"] as const;
export const TIMESTAMP_HEADER = "X-OpenPlatform-Timestamp";
export const SIGNATURE_HEADER = "X-OpenPlatform-Signature";

/**
 * A launch's query: `URLSearchParams`, or an object such as Express's `req.query` (a value that is
 * an array counts by its first item; anything but a string counts as missing).
 */
export type QueryInput = URLSearchParams | Readonly<Record<string, unknown>>;

/** Request headers: a fetch `Headers`, Node's `IncomingHttpHeaders`, or a plain object (any case). */
export type HeadersInput =
  | { get(name: string): string | null }
  | Readonly<Record<string, string | readonly string[] | undefined>>;

const DIGITS = /^[0-9]+$/;

export function derivedKey(secret: string, purpose: string): Buffer {
  return createHmac("sha256", secret).update(purpose).digest();
}

/** One value form-encoded exactly like Python's `urllib.parse.quote_plus` (what the server signs). */
export function formEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, "+");
}

export function param(params: QueryInput, name: string): string {
  if (params instanceof URLSearchParams) return params.get(name) ?? "";
  const value = params[name];
  if (Array.isArray(value)) return typeof value[0] === "string" ? value[0] : "";
  return typeof value === "string" ? value : "";
}

export function launchCanonical(params: QueryInput): string {
  return LAUNCH_FIELDS.map((k) => `${k}=${formEncode(param(params, k))}`).join("&");
}

function hmacHex(key: Buffer, message: string | Buffer): string {
  return createHmac("sha256", key).update(message).digest("hex");
}

/** Constant-time comparison of two strings of any characters. */
function equal(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(given, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

function nowSeconds(): number {
  return Date.now() / 1000;
}

/** The query parameters of a signed launch (what the portal's "Open app" sends; useful in tests). */
export function signLaunch(
  secret: string, appId: string, xspe: string, customerId: string | null | undefined, timestamp?: number,
): Record<string, string> {
  const params: Record<string, string> = {
    app_id: appId, xspe, customer_id: customerId ?? "",
    timestamp: String(timestamp ?? Math.floor(nowSeconds())),
  };
  return { ...params, signature: hmacHex(derivedKey(secret, "launch"), launchCanonical(params)) };
}

/** True when the launch parameters are authentic and fresh. */
export function verifyLaunch(secret: string, params: QueryInput, now: number = nowSeconds()): boolean {
  const timestamp = param(params, "timestamp");
  if (!DIGITS.test(timestamp) || Math.abs(now - Number(timestamp)) > LAUNCH_MAX_AGE) return false;
  let canonical: string;
  try {
    canonical = launchCanonical(params);
  } catch {
    return false; // a lone surrogate cannot be encoded: not something the platform signed
  }
  return equal(hmacHex(derivedKey(secret, "launch"), canonical), param(params, "signature"));
}

/** The launch the platform signed for this app, or `InvalidSignature`. */
export function launchFrom(appId: string, secret: string, params: QueryInput, now?: number): Launch {
  if (!verifyLaunch(secret, params, now)) {
    throw new InvalidSignature("The launch signature is invalid or the launch is too old.", { field: "signature" });
  }
  if (!equal(param(params, "app_id"), appId)) {
    throw new InvalidSignature("The launch is for another app.", { field: "app_id" });
  }
  const xspe = param(params, "xspe");
  if (!xspe) throw new InvalidSignature("The launch names no xspe.", { field: "xspe" });
  return { appId, xspe, customerId: param(params, "customer_id") || null, timestamp: Number(param(params, "timestamp")) };
}

function bytes(body: string | Uint8Array): Buffer {
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

/** The headers that authenticate a webhook body. */
export function signWebhook(secret: string, body: string | Uint8Array, timestamp?: number): Record<string, string> {
  const ts = String(timestamp ?? Math.floor(nowSeconds()));
  const mac = hmacHex(derivedKey(secret, "webhook"), Buffer.concat([Buffer.from(`${ts}.`), bytes(body)]));
  return { [TIMESTAMP_HEADER]: ts, [SIGNATURE_HEADER]: mac };
}

/** True when the HMAC header signature covers this exact body and the timestamp is fresh. */
export function verifyWebhook(
  secret: string, body: string | Uint8Array, timestamp: string, signature: string, now: number = nowSeconds(),
): boolean {
  if (!DIGITS.test(timestamp) || Math.abs(now - Number(timestamp)) > LAUNCH_MAX_AGE) return false;
  const expected = signWebhook(secret, body, Number(timestamp))[SIGNATURE_HEADER] ?? "";
  return equal(expected, signature);
}

/** The original platform's notification signature: MD5 hex of `app_id:app_secret:expiration_time`. */
export function legacyNotificationSignature(appId: string, secret: string, expirationTime: number): string {
  return createHash("md5").update(`${appId}:${secret}:${expirationTime}`).digest("hex");
}

/** The original platform's check: MD5 of `app_id:secret:expiration_time`, not yet expired. */
export function legacySignatureOk(
  appId: string, secret: string, document: Record<string, unknown>, now: number = nowSeconds(),
): boolean {
  const expiration = document.expiration_time;
  if (typeof expiration !== "number" || !Number.isSafeInteger(expiration)) return false;
  if (expiration < now * 1000) return false;
  const given = typeof document.signature === "string" ? document.signature : "";
  return equal(legacyNotificationSignature(appId, secret, expiration), given);
}

export function header(headers: HeadersInput, name: string): string {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? "";
  }
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
    if (key.toLowerCase() !== wanted) continue;
    if (Array.isArray(value)) return typeof value[0] === "string" ? value[0] : "";
    return typeof value === "string" ? value : "";
  }
  return "";
}

function optionalText(value: unknown): string | null {
  return typeof value === "string" && value ? value : null;
}

/**
 * The notification in `body` (the raw bytes as received), after checking the HMAC headers and the
 * legacy MD5 field. Both must hold: the HMAC covers the body, the MD5 is what the original
 * platform sent and proves the sender knew the secret when the event was built.
 */
export function webhookFrom(
  appId: string, secret: string, body: string | Uint8Array, headers: HeadersInput, now?: number,
): WebhookEvent {
  const timestamp = header(headers, TIMESTAMP_HEADER);
  if (!verifyWebhook(secret, body, timestamp, header(headers, SIGNATURE_HEADER), now)) {
    throw new InvalidSignature("The webhook signature is invalid or too old.", { field: SIGNATURE_HEADER });
  }
  let document: unknown;
  try {
    document = JSON.parse(bytes(body).toString("utf8"));
  } catch (cause) {
    throw new InvalidSignature("The webhook body is not JSON.", { cause });
  }
  if (typeof document !== "object" || document === null || Array.isArray(document)) {
    throw new InvalidSignature("The webhook body is not a JSON object.");
  }
  const doc = document as Record<string, unknown>;
  if (!legacySignatureOk(appId, secret, doc, now)) {
    throw new InvalidSignature("The webhook's signature field does not match.", { field: "signature" });
  }
  const type = typeof doc.type === "number" ? doc.type : 0;
  return {
    type, customerId: optionalText(doc.customer_id),
    actionTime: typeof doc.action_time === "number" ? doc.action_time : 0,
    expirationTime: doc.expiration_time as number, appId: optionalText(doc.app_id), xspe: optionalText(doc.xspe),
    eventId: optionalText(doc.event_id), installed: type === 1, uninstalled: type === 2, body: doc,
  };
}
