/**
 * Signed, expiring cookies: the app keeps its state in the browser, not in a server store.
 *
 * Value: `base64url(json) "." hex(HMAC-SHA256(key, base64url(json)))` with an `exp` inside. The
 * key is derived from the app secret, so rotating the secret signs everyone out. The JSON is
 * readable by the browser; nothing secret goes in it.
 */

import { createHmac, timingSafeEqual } from "node:crypto";

export const STATE_COOKIE = "partner_connect"; // between the launch and the callback
export const SESSION_COOKIE = "partner_session"; // who is using the app
export const STATE_MAX_AGE = 600;
export const SESSION_MAX_AGE = 8 * 3600;

export class CookieJar {
  /** @param {string} appSecret @param {boolean} secure */
  constructor(appSecret, secure) {
    this.key = createHmac("sha256", appSecret).update("partner_app cookies").digest();
    this.secure = secure;
  }

  /** @param {string} payload */
  mac(payload) {
    return createHmac("sha256", this.key).update(payload).digest("hex");
  }

  /** @param {Record<string, unknown>} data @param {number} maxAge */
  dumps(data, maxAge) {
    const payload = Buffer.from(JSON.stringify({ ...data, exp: Math.floor(Date.now() / 1000) + maxAge })).toString("base64url");
    return `${payload}.${this.mac(payload)}`;
  }

  /** The data, or null when the cookie is missing, altered or expired. @param {string | undefined} value */
  loads(value) {
    const [payload = "", mac = ""] = (value ?? "").split(".");
    const expected = Buffer.from(this.mac(payload));
    if (!payload || mac.length !== expected.length || !timingSafeEqual(Buffer.from(mac), expected)) return null;
    const data = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    if (typeof data !== "object" || data === null || !(data.exp > Date.now() / 1000)) return null;
    return data;
  }

  /** @param {import("node:http").IncomingMessage} request @param {string} name */
  read(request, name) {
    for (const part of (request.headers.cookie ?? "").split(";")) {
      const at = part.indexOf("=");
      if (at > 0 && part.slice(0, at).trim() === name) return this.loads(part.slice(at + 1).trim());
    }
    return null;
  }

  /** The Set-Cookie header value. @param {string} name @param {Record<string, unknown>} data @param {number} maxAge */
  write(name, data, maxAge) {
    return `${name}=${this.dumps(data, maxAge)}; Max-Age=${maxAge}; Path=/; HttpOnly; SameSite=Lax${this.secure ? "; Secure" : ""}`;
  }

  /** @param {string} name */
  clear(name) {
    return `${name}=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax${this.secure ? "; Secure" : ""}`;
  }
}
