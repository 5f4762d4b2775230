/** Typed results: tokens, Open API objects, pages, launches and webhook events. */

/** The JSON form of a token, the same keys as the Python SDK's `Token.to_dict()`. */
export interface TokenJSON {
  access_token: string;
  expires_in: number;
  expires_at: number;
  refresh_token?: string | null;
  scope?: string | null;
  customer_id?: string | null;
  xspe?: string | null;
}

export interface TokenInit {
  accessToken: string;
  expiresIn: number;
  /** UNIX seconds: the app's clock when the request was sent plus `expiresIn` (errs on the early side). */
  expiresAt: number;
  refreshToken?: string | null;
  scope?: string | null;
  customerId?: string | null;
  xspe?: string | null;
}

const INSPECT = Symbol.for("nodejs.util.inspect.custom");

/**
 * An access token as the SDK keeps it. A user token has a `refreshToken` and the customer it
 * belongs to; an app token has neither. `String(token)` is the bearer value; `console.log(token)`
 * and `util.inspect` never show the token values.
 */
export class Token {
  readonly accessToken: string;
  readonly expiresIn: number;
  readonly expiresAt: number;
  readonly refreshToken: string | null;
  readonly scope: string | null;
  readonly customerId: string | null;
  readonly xspe: string | null;

  constructor(init: TokenInit) {
    this.accessToken = init.accessToken;
    this.expiresIn = init.expiresIn;
    this.expiresAt = init.expiresAt;
    this.refreshToken = init.refreshToken ?? null;
    this.scope = init.scope ?? null;
    this.customerId = init.customerId ?? null;
    this.xspe = init.xspe ?? null;
  }

  get scopes(): Set<string> {
    return new Set((this.scope ?? "").split(/\s+/).filter(Boolean));
  }

  /**
   * True once the token is within its refresh margin of expiry (or past it). The margin is capped
   * at a quarter of the lifetime, so short-lived tokens are still used most of their life.
   */
  due(now: number, margin: number): boolean {
    return now >= this.expiresAt - Math.min(margin, this.expiresIn / 4);
  }

  /** The JSON form, for token stores that persist outside the process (shared with the Python SDK). */
  toJSON(): TokenJSON {
    return {
      access_token: this.accessToken, expires_in: this.expiresIn, expires_at: this.expiresAt,
      refresh_token: this.refreshToken, scope: this.scope, customer_id: this.customerId, xspe: this.xspe,
    };
  }

  static fromJSON(data: TokenJSON | string): Token {
    const d: TokenJSON = typeof data === "string" ? (JSON.parse(data) as TokenJSON) : data;
    return new Token({
      accessToken: d.access_token, expiresIn: d.expires_in, expiresAt: d.expires_at,
      refreshToken: d.refresh_token ?? null, scope: d.scope ?? null, customerId: d.customer_id ?? null,
      xspe: d.xspe ?? null,
    });
  }

  /** The bearer value, so `Bearer ${token}` works. Avoid logging `String(token)`. */
  toString(): string {
    return this.accessToken;
  }

  [INSPECT](): string {
    return `Token { customerId: ${JSON.stringify(this.customerId)}, scope: ${JSON.stringify(this.scope)}, ` +
      `expiresAt: ${Math.round(this.expiresAt)} }`;
  }
}

export interface Customer {
  customerId: string;
  xspe: string;
  name: string;
  contact: string;
  status: string;
  createdAt: number;
  updatedAt: number;
  /** Send it back with an update: a stale version gets `Conflict` (40901). */
  version: number;
}

export interface Site {
  siteId: string;
  customerId: string;
  xspe: string;
  name: string;
  domain: string;
  status: string;
  createdAt: number;
  updatedAt: number;
  version: number;
}

/** One page of a list answer. */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  pageSize: number;
  /** The SPE the list is about, when the server says. */
  xspe: string | null;
  /** True when a later page has items. */
  hasNext: boolean;
}

/** A verified signed launch: who opened the app. `customerId` is null for an SPE-wide launch. */
export interface Launch {
  appId: string;
  xspe: string;
  customerId: string | null;
  /** UNIX seconds, when the portal signed it. */
  timestamp: number;
}

/**
 * An install (type 1) or uninstall (type 2) notification, after verification. `customerId` is null
 * for an installation for a whole SPE (`xspe` says which); `eventId` is the same on every retry of
 * one event, to drop duplicates. Times are UNIX milliseconds, as in the original platform's format.
 */
export interface WebhookEvent {
  type: number;
  customerId: string | null;
  actionTime: number;
  expirationTime: number;
  appId: string | null;
  xspe: string | null;
  eventId: string | null;
  installed: boolean;
  uninstalled: boolean;
  /** The whole JSON body as sent. */
  body: Record<string, unknown>;
}

type Wire = Record<string, unknown>;

function wire(value: unknown): Wire {
  return typeof value === "object" && value !== null ? (value as Wire) : {};
}

function text(data: Wire, key: string, fallback = ""): string {
  const value = data[key];
  return typeof value === "string" ? value : fallback;
}

function int(data: Wire, key: string, fallback = 0): number {
  const value = data[key];
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

export function customerFromApi(result: unknown): Customer {
  const data = wire(result);
  return {
    customerId: text(data, "customer_id"), xspe: text(data, "xspe"), name: text(data, "name"),
    contact: text(data, "contact"), status: text(data, "status", "active"), createdAt: int(data, "created_at"),
    updatedAt: int(data, "updated_at"), version: int(data, "version", 1),
  };
}

export function siteFromApi(result: unknown): Site {
  const data = wire(result);
  return {
    siteId: text(data, "site_id"), customerId: text(data, "customer_id"), xspe: text(data, "xspe"),
    name: text(data, "name"), domain: text(data, "domain"), status: text(data, "status", "active"),
    createdAt: int(data, "created_at"), updatedAt: int(data, "updated_at"), version: int(data, "version", 1),
  };
}

/** A parser of a list answer `{"items", "total", "page", "page_size"}`. */
export function pageParser<T>(item: (data: unknown) => T): (result: unknown) => Page<T> {
  return (result: unknown): Page<T> => {
    const data = wire(result);
    const raw: unknown[] = Array.isArray(data.items) ? data.items : [];
    const items = raw.map(item);
    const total = int(data, "total"), page = int(data, "page", 1), pageSize = int(data, "page_size");
    const xspe = typeof data.xspe === "string" ? data.xspe : null;
    return { items, total, page, pageSize, xspe, hasNext: page * pageSize < total && items.length > 0 };
  };
}
