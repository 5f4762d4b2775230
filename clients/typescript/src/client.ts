/**
 * `AppClient`: the SDK over Node's built-in `fetch` (SPEC §6, §11).
 *
 * Token renewal is single-flight per token: a lock per store key, and every caller re-reads the
 * store once it holds the lock, so however many concurrent calls find the token due (or rejected
 * with 40102) at once, one request renews it and the others use its result.
 */

import { timingSafeEqual } from "node:crypto";

import {
  InvalidGrantError,
  OpenPlatformError,
  ReauthorizationRequired,
  RequestTimeout,
  StateMismatch,
  TransportError,
  ValidationError,
} from "./errors.js";
import { KeyedLocks } from "./locks.js";
import type { Launch, Token, WebhookEvent } from "./models.js";
import * as protocol from "./protocol.js";
import type { Answer } from "./protocol.js";
import { type Call, Customers, CustomerSession, Sites } from "./resources.js";
import { type HeadersInput, launchFrom, type QueryInput, webhookFrom } from "./signing.js";
import { InMemoryTokenStore, type TokenStore, tokenKey } from "./tokens.js";

export const VERSION = "0.1.0";
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Refresh this long (seconds) before expiry, capped at a quarter of the token's lifetime. */
export const DEFAULT_REFRESH_MARGIN = 60;
const USER_AGENT = `openplatform-typescript-sdk/${VERSION}`;
/** Requests sent again after a network failure (RFC 9110 §9.2.2: safe to repeat). */
const RETRIED_METHODS = new Set(["GET", "HEAD"]);
/** Failures where nothing reached the server: any request may be sent again. */
const NOT_SENT = new Set(["ECONNREFUSED", "UND_ERR_CONNECT_TIMEOUT"]);

export interface AppClientOptions {
  appId: string;
  secret: string;
  /** The platform's base URL, e.g. `https://open.example.com`. */
  baseUrl: string;
  /** Per request, milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Seconds before expiry to refresh (default 60, at most a quarter of the token's lifetime). */
  refreshMargin?: number;
  /** RFC 7636 PKCE on connect (default true). */
  pkce?: boolean;
  tokenStore?: TokenStore;
  /** The app's clock, UNIX seconds (default `Date.now() / 1000`). */
  clock?: () => number;
  /** A `fetch` to use instead of the global one (a proxy agent, instrumentation). */
  fetch?: typeof fetch;
}

export interface ConnectOptions {
  xspe: string;
  customerId: string;
  /** Same host and port as the app's `host_url`. */
  redirectUri: string;
  /** Default `install_login`; add scopes the app registered, space-separated. */
  scope?: string;
  /** Default: a new random state. */
  state?: string;
}

export interface ExchangeOptions {
  /** The callback's `state` query parameter. */
  state: string | null | undefined;
  /** The state you kept (cookie, session); may be left out when this client made the connect URL. */
  expectedState?: string | null;
  /** Whom the token is for: else the connect URL's customer, else asked from the server (RFC 7662). */
  customerId?: string | null;
  xspe?: string | null;
  redirectUri?: string | null;
}

export interface RequestOptions {
  /** Whose user token to use; leave out for the app token. */
  customerId?: string | null;
  params?: Record<string, string | number>;
  json?: Record<string, unknown>;
}

interface Send {
  method: string;
  path: string;
  params?: Record<string, string | number> | undefined;
  form?: Record<string, string> | undefined;
  json?: Record<string, unknown> | undefined;
  headers?: Record<string, string> | undefined;
}

interface CodeExchange {
  customerId: string | null;
  xspe: string | null;
  redirectUri: string | null;
  verifier: string | null;
}

function errorCode(error: unknown): string {
  let cause: unknown = error;
  for (let depth = 0; depth < 4 && cause instanceof Error; depth += 1) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string") return code;
    const inner: unknown = (cause as { errors?: unknown[] }).errors?.[0] ?? cause.cause;
    cause = inner;
  }
  return "";
}

/** Constant-time string comparison (RFC 6749 §10.12: the state is a CSRF token). */
function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The server's address, such as `https://open.example.com`, without a trailing slash. Checked when
 * the client is made, so a typo is a configuration error at once (`ValidationError`, 40001, field
 * `baseUrl`) rather than a network failure at the first call: an absolute http(s) URL with a host,
 * and no query or fragment.
 */
function checkedBaseUrl(baseUrl: string): string {
  const text = baseUrl.trim();
  let usable = false;
  try {
    const url = new URL(text);
    usable = (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "" &&
      url.search === "" && url.hash === "" && /^https?:\/\//i.test(text);
  } catch {
    usable = false;
  }
  if (!usable) {
    throw new ValidationError(
      `baseUrl must be the server's absolute http(s) URL, such as https://open.example.com; got ${JSON.stringify(baseUrl)}.`,
      { field: "baseUrl" },
    );
  }
  return text.replace(/\/+$/, "");
}

/** `new AppClient({ appId, secret, baseUrl })` — see docs/sdk.md. */
export class AppClient {
  readonly appId: string;
  readonly baseUrl: string;
  readonly tokens: TokenStore;
  readonly customers: Customers;
  readonly sites: Sites;
  readonly timeoutMs: number;
  readonly refreshMargin: number;
  readonly pkce: boolean;
  readonly clock: () => number;
  readonly #secret: string;
  readonly #fetch: typeof fetch;
  readonly #locks = new KeyedLocks();
  readonly #pending: protocol.PendingStates;

  constructor(options: AppClientOptions) {
    if (!options?.appId || !options.secret || !options.baseUrl) {
      throw new ValidationError("appId, secret and baseUrl are required.");
    }
    this.appId = options.appId;
    this.#secret = options.secret;
    this.baseUrl = checkedBaseUrl(options.baseUrl);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.refreshMargin = options.refreshMargin ?? DEFAULT_REFRESH_MARGIN;
    this.pkce = options.pkce ?? true;
    this.clock = options.clock ?? ((): number => Date.now() / 1000);
    this.tokens = options.tokenStore ?? new InMemoryTokenStore();
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#pending = new protocol.PendingStates(this.clock);
    this.customers = new Customers(this);
    this.sites = new Sites(this);
  }

  /** `console.log(client)` never shows the secret (it is a private field). */
  toString(): string {
    return `AppClient(appId=${this.appId}, baseUrl=${this.baseUrl})`;
  }

  toJSON(): { appId: string; baseUrl: string } {
    return { appId: this.appId, baseUrl: this.baseUrl };
  }

  /** One customer's view: its record and its sites, through its user token. */
  asCustomer(customerId: string): CustomerSession {
    return new CustomerSession(this, customerId);
  }

  // ------------------------------------------------------------ launch, connect

  /** Check a signed launch (the query of a request to the app's host_url); throws `InvalidSignature`. */
  verifyLaunch(params: QueryInput): Launch {
    return launchFrom(this.appId, this.#secret, params, this.clock());
  }

  /** Check an install/uninstall notification (raw body); answer `{"code": 0}` once handled. */
  verifyWebhook(body: string | Uint8Array, headers: HeadersInput): WebhookEvent {
    return webhookFrom(this.appId, this.#secret, body, headers, this.clock());
  }

  /**
   * SPEC §2.1: the URL to send the customer's browser to, and the state to keep where the
   * callback can check it (a signed cookie, the session). This client also remembers it, with the
   * customer, for `exchangeCode` in the same process.
   */
  connectUrl(options: ConnectOptions): { url: string; state: string } {
    const customerId = protocol.requiredCustomerId(options.customerId); // a code is for one customer (SPEC §2.1)
    const state = options.state || protocol.newState();
    const verifier = this.pkce ? protocol.pkceVerifier(this.#secret, state) : null;
    const params = {
      redirect_uri: options.redirectUri, scope: options.scope ?? "install_login", xspe: options.xspe,
      customer_id: customerId,
    };
    this.#pending.add(state, options.xspe, customerId, options.redirectUri);
    return { url: protocol.connectUrl(this.baseUrl, this.appId, params, state, verifier), state };
  }

  /**
   * SPEC §2.2: check the callback's state, trade the code for the customer's tokens, keep them.
   * Never retried: a code presented twice revokes its tokens.
   */
  async exchangeCode(code: string, options: ExchangeOptions): Promise<Token> {
    const checked = this.#checkCallback(options);
    const form = protocol.exchangeForm(this.appId, this.#secret, code, checked.redirectUri, checked.verifier);
    const [result, sentAt] = await this.#post("/oauth/access_token", form, false);
    let { customerId, xspe } = checked;
    if (customerId === null) {
      const facts = await this.introspect(String((result as Record<string, unknown>).access_token));
      customerId = typeof facts.customer_id === "string" && facts.customer_id ? facts.customer_id : null;
      xspe = typeof facts.xspe === "string" ? facts.xspe : xspe;
    }
    const token = protocol.tokenFrom(result, sentAt, customerId, xspe);
    if (customerId !== null) {
      const key = tokenKey(this.appId, customerId);
      // Not in the middle of a refresh of the customer's previous tokens.
      await this.#locks.run(key, async () => this.tokens.set(key, token));
    }
    return token;
  }

  #checkCallback(options: ExchangeOptions): CodeExchange {
    const state = options.state ?? "";
    const pending = state ? this.#pending.pop(state) : undefined;
    const expected = options.expectedState ?? (pending ? state : null);
    if (!state || expected === null || !sameText(state, expected)) {
      throw new StateMismatch("The state of the callback does not match the one issued.", { field: "state" });
    }
    return {
      customerId: options.customerId || pending?.customerId || null,
      xspe: options.xspe || pending?.xspe || null,
      redirectUri: options.redirectUri || pending?.redirectUri || null,
      verifier: this.pkce ? protocol.pkceVerifier(this.#secret, state) : null,
    };
  }

  // ---------------------------------------------------------------- tokens

  /** SPEC §2.4: the cached app token, fetched or renewed when due. */
  appToken(): Promise<Token> {
    return this.#current(null);
  }

  /** The customer's access token, refreshed when due. */
  async userToken(customerId: string): Promise<Token> {
    return this.#current(protocol.requiredCustomerId(customerId)); // null would stand for the app token
  }

  /** Refresh the customer's tokens now (SPEC §2.3), whatever their age. */
  async refresh(customerId: string): Promise<Token> {
    customerId = protocol.requiredCustomerId(customerId);
    const key = tokenKey(this.appId, customerId);
    return this.#locks.run(key, async () => this.#renewLocked(customerId, (await this.tokens.get(key)) ?? null));
  }

  /** Drop the customer's tokens from the store (the server still knows them). */
  async forget(customerId: string): Promise<void> {
    await this.tokens.delete(tokenKey(this.appId, protocol.requiredCustomerId(customerId)));
  }

  /** RFC 7009: revoke the customer's refresh token (and with it the whole family), then forget it. */
  async revoke(customerId: string): Promise<void> {
    customerId = protocol.requiredCustomerId(customerId);
    const token = await this.tokens.get(tokenKey(this.appId, customerId));
    if (token?.refreshToken) {
      await this.#post("/oauth/revoke", protocol.credentialsForm(this.appId, this.#secret, token.refreshToken), false);
    }
    await this.forget(customerId);
  }

  /** RFC 7662: what the server knows about one of this app's tokens. */
  async introspect(token: string): Promise<Record<string, unknown>> {
    const [result] = await this.#post("/oauth/introspect", protocol.credentialsForm(this.appId, this.#secret, token), false);
    return { ...(result as Record<string, unknown>) };
  }

  async #current(customerId: string | null): Promise<Token> {
    const key = tokenKey(this.appId, customerId);
    const token = await this.tokens.get(key);
    if (token && !token.due(this.clock(), this.refreshMargin)) return token;
    return this.#locks.run(key, async () => {
      const again = await this.tokens.get(key); // renewed by another caller while this one waited?
      if (again && !again.due(this.clock(), this.refreshMargin)) return again;
      return this.#renewLocked(customerId, again ?? null);
    });
  }

  /** The server said 40102 for `rejected`: renew it, unless someone already did. */
  #afterRejection(customerId: string | null, rejected: Token): Promise<Token> {
    const key = tokenKey(this.appId, customerId);
    return this.#locks.run(key, async () => {
      const token = await this.tokens.get(key);
      if (token && token.accessToken !== rejected.accessToken) return token;
      return this.#renewLocked(customerId, token ?? null);
    });
  }

  /** Fetch a new app token, or rotate the user's refresh token; the caller holds the key's lock. */
  async #renewLocked(customerId: string | null, token: Token | null): Promise<Token> {
    const key = tokenKey(this.appId, customerId);
    let fresh: Token;
    if (customerId === null) {
      const [result, sentAt] = await this.#post("/oauth/credit/token", protocol.appTokenForm(this.appId, this.#secret), true);
      fresh = protocol.tokenFrom(result, sentAt, null, null);
    } else {
      if (!token?.refreshToken) {
        throw new ReauthorizationRequired(
          `No tokens are stored for customer ${customerId}; send them through connectUrl.`,
          { customerId, code: 40102, error: "invalid_token" },
        );
      }
      const form = protocol.refreshForm(this.appId, this.#secret, token.refreshToken);
      let answer: [unknown, number];
      try {
        answer = await this.#post("/oauth/refresh_token", form, true);
      } catch (error) {
        if (!(error instanceof InvalidGrantError)) throw error;
        await this.tokens.delete(key);
        throw protocol.reauthorization(customerId, error);
      }
      fresh = protocol.tokenFrom(answer[0], answer[1], customerId, token.xspe);
    }
    await this.tokens.set(key, fresh);
    return fresh;
  }

  // -------------------------------------------------------------- Open APIs

  /** Run one Open API call; on 40102 renew the token once and retry once. */
  async call<T>(call: Call<T>): Promise<T> {
    let token = await this.#current(call.customerId);
    let answer = await this.#openApi(call, token);
    let body = protocol.envelope(answer);
    if (protocol.isInvalidToken(body)) {
      token = await this.#afterRejection(call.customerId, token);
      answer = await this.#openApi(call, token);
      body = protocol.envelope(answer);
    }
    return call.parse(protocol.resultOf(answer, body));
  }

  /**
   * Any Open API not wrapped by the resources; returns the envelope's `result`. Without `customerId`
   * (or with null) it goes with the app token; an empty one is refused (`CustomerIdRequired`).
   */
  async request(method: Call<unknown>["method"], path: string, options: RequestOptions = {}): Promise<unknown> {
    const customerId = options.customerId == null ? null : protocol.requiredCustomerId(options.customerId);
    return this.call({
      method, path, parse: (result) => result, customerId,
      params: options.params, json: options.json,
    });
  }

  #openApi(call: Call<unknown>, token: Token): Promise<Answer> {
    const headers = { authorization: `Bearer ${token.accessToken}` };
    return this.#send({ method: call.method, path: call.path, params: call.params, json: call.json, headers }, false);
  }

  // ------------------------------------------------------------------ HTTP

  /** POST a token endpoint form; the result and when it was sent (for expiresAt). */
  async #post(path: string, form: Record<string, string>, retry: boolean): Promise<[unknown, number]> {
    const sentAt = this.clock();
    const answer = await this.#send({ method: "POST", path, form }, retry);
    return [protocol.resultOf(answer), sentAt];
  }

  /**
   * One request. A connection that could not be opened is tried once more for any request
   * (nothing was sent); after any other network failure a GET is sent once more, and so is a
   * request the server answers idempotently (`retry`: a refresh within its leeway, an app token).
   * Timeouts are not retried.
   */
  async #send(request: Send, retry: boolean): Promise<Answer> {
    try {
      return await this.#sendOnce(request);
    } catch (error) {
      if (!(error instanceof TransportError) || error instanceof RequestTimeout) throw error;
      const again = retry || RETRIED_METHODS.has(request.method) || NOT_SENT.has(errorCode(error.cause));
      if (!again) throw error;
    }
    return this.#sendOnce(request);
  }

  async #sendOnce(request: Send): Promise<Answer> {
    const url = new URL(this.baseUrl + request.path);
    for (const [name, value] of Object.entries(request.params ?? {})) url.searchParams.set(name, String(value));
    const headers: Record<string, string> = { "user-agent": USER_AGENT, accept: "application/json", ...request.headers };
    let body: string | URLSearchParams | undefined;
    if (request.form) {
      body = new URLSearchParams(request.form);
    } else if (request.json) {
      body = JSON.stringify(request.json);
      headers["content-type"] = "application/json";
    }
    const what = `${request.method} ${request.path}`;
    try {
      const response = await this.#fetch(url, {
        method: request.method, headers, body, redirect: "manual", signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await response.text();
      const answerHeaders: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        answerHeaders[name.toLowerCase()] = value;
      });
      return { status: response.status, headers: answerHeaders, text };
    } catch (error) {
      if (error instanceof OpenPlatformError) throw error;
      const name = (error as { name?: unknown } | null)?.name;
      if (name === "TimeoutError" || name === "AbortError") {
        throw new RequestTimeout(`${what} timed out after ${this.timeoutMs} ms.`, { cause: error });
      }
      const code = errorCode(error);
      throw new TransportError(`${what} failed: ${code || String(error)}.`, { cause: error });
    }
  }
}
