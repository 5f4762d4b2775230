/**
 * Where the SDK keeps tokens: one user token per customer, one app token per app.
 *
 * The default store is in memory, per process. Apps running on several machines plug in a shared
 * store (Redis, a database table) by implementing `TokenStore`; `token.toJSON()` and
 * `Token.fromJSON()` give a JSON form, the same as the Python SDK's, under the same keys, so a
 * Python and a Node process of one app can share a store. Single-flight refreshing happens in the
 * client, per process: two processes sharing a store may each refresh once, which the server
 * tolerates (a refresh retried within its leeway gets the same pair).
 */

import type { Token } from "./models.js";

/** A token store; each method may return a value or a promise. */
export interface TokenStore {
  get(key: string): Promise<Token | null | undefined> | Token | null | undefined;
  set(key: string, token: Token): Promise<void> | void;
  delete(key: string): Promise<void> | void;
}

/** The default store: a Map in this process. */
export class InMemoryTokenStore implements TokenStore {
  private readonly tokens = new Map<string, Token>();

  get(key: string): Token | undefined {
    return this.tokens.get(key);
  }

  set(key: string, token: Token): void {
    this.tokens.set(key, token);
  }

  delete(key: string): void {
    this.tokens.delete(key);
  }

  get size(): number {
    return this.tokens.size;
  }
}

export function appKey(appId: string): string {
  return `${appId}:app`;
}

export function userKey(appId: string, customerId: string): string {
  return `${appId}:customer:${customerId}`;
}

/** The store key of the token used for `customerId` (null: the app token). */
export function tokenKey(appId: string, customerId: string | null): string {
  return customerId === null ? appKey(appId) : userKey(appId, customerId);
}
