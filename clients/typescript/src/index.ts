/**
 * `@openplatform/client`: the TypeScript SDK for apps on an openplatform server (SPEC §11).
 *
 * ```ts
 * import { AppClient } from "@openplatform/client";
 *
 * const client = new AppClient({ appId: APP_ID, secret: SECRET, baseUrl: "https://open.example.com" });
 * const launch = client.verifyLaunch(new URL(req.url, base).searchParams);
 * // launch.customerId is null for an SPE-wide launch: the admin picks one of client.customers.list({ xspe })
 * const customerId = launch.customerId ?? pickedCustomerId;
 * const { url, state } = client.connectUrl({ xspe: launch.xspe, customerId, redirectUri });
 * // ... the browser comes back to redirectUri?code=…&state=…
 * const token = await client.exchangeCode(code, { state: stateFromQuery, expectedState: state });
 * const sites = await client.asCustomer(token.customerId!).sites.list();
 * const customers = await client.customers.list();          // with the app token
 * ```
 *
 * The guide is docs/sdk.md in the openplatform repository.
 */

export {
  AppClient,
  type AppClientOptions,
  type ConnectOptions,
  DEFAULT_REFRESH_MARGIN,
  DEFAULT_TIMEOUT_MS,
  type ExchangeOptions,
  type RequestOptions,
  VERSION,
} from "./client.js";
export {
  AccessDenied,
  BY_ERROR,
  Conflict,
  CustomerIdRequired,
  type ErrorDetails,
  InsufficientScope,
  InvalidClientError,
  InvalidGrantError,
  InvalidRedirectUriError,
  InvalidScopeError,
  InvalidSignature,
  InvalidTokenError,
  IpNotAllowed,
  MethodNotAllowed,
  NotFound,
  OpenPlatformError,
  RateLimited,
  ReauthorizationRequired,
  RequestHeadersTooLarge,
  RequestTimeout,
  ServerError,
  ServiceUnavailable,
  StateMismatch,
  TransportError,
  UnsupportedGrantType,
  UnsupportedResponseType,
  ValidationError,
} from "./errors.js";
export type { Customer, Launch, Page, Site, TokenInit, TokenJSON, WebhookEvent } from "./models.js";
export { Token } from "./models.js";
export type {
  Call,
  CustomerChanges,
  CustomerFilter,
  NewCustomer,
  NewSite,
  PageOptions,
  SiteChanges,
} from "./resources.js";
export { Customers, CustomerSession, CustomerSites, Sites } from "./resources.js";
export type { HeadersInput, QueryInput } from "./signing.js";
export * as signing from "./signing.js";
export { appKey, InMemoryTokenStore, type TokenStore, tokenKey, userKey } from "./tokens.js";

/** What a webhook receiver answers once it has handled the event. */
export const WEBHOOK_ACK: Readonly<{ code: 0 }> = Object.freeze({ code: 0 });
