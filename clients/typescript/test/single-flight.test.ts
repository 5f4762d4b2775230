/**
 * Single-flight renewal against a real server: 50 concurrent calls on an expired token cause
 * exactly one renewal request, counted at the server (its /metrics) and on the wire (a counting
 * `fetch`).
 *
 * "Expired" both ways it reaches an app:
 * - client_clock: time passed; the app's clock says the token is past its `expires_in` (the
 *   server issues 60 s tokens here; the clock jumps 61 s), so every caller finds it due first;
 * - server_rejects: the SDK still believes the token valid but the server answers 40102 (what an
 *   expiry looks like when clocks disagree); every caller gets 40102 and none may renew again
 *   once one has.
 * In both, the server has really revoked the old access token, so a caller that kept using it
 * would fail. The app token is checked the same way: one fetch for 50 first callers, one after
 * a 40102. The token store answers asynchronously (a few ms), as a shared store would.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { AppClient, Token, type TokenStore } from "../src/index.js";
import {
  codeFrom,
  Metrics,
  type Partner,
  revokeAtServer,
  seedPartner,
  type Server,
  sleep,
  startServer,
  USER_SCOPE,
} from "./support.js";

const CALLERS = 50;

let server: Server;
let partner: Partner;
let metrics: Metrics;

before(async () => {
  server = await startServer();
  partner = await seedPartner(server);
  metrics = new Metrics(server);
});

after(async () => {
  await server?.stop();
});

/** A store that takes a few milliseconds per call, like Redis would: the race gets real gaps. */
class SlowStore implements TokenStore {
  private readonly saved = new Map<string, string>();

  async get(key: string): Promise<Token | null> {
    await sleep(1 + Math.random() * 3);
    const raw = this.saved.get(key);
    return raw === undefined ? null : Token.fromJSON(raw);
  }

  async set(key: string, token: Token): Promise<void> {
    await sleep(1 + Math.random() * 3);
    this.saved.set(key, JSON.stringify(token));
  }

  async delete(key: string): Promise<void> {
    this.saved.delete(key);
  }
}

interface Harness {
  client: AppClient;
  skew(seconds: number): void;
  sent(path: string): number;
}

function harness(): Harness {
  let offset = 0;
  const counts = new Map<string, number>();
  const counting: typeof fetch = (input, init) => {
    const path = new URL(String(input)).pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    return fetch(input, init);
  };
  const client = new AppClient({
    appId: partner.appId, secret: partner.secret, baseUrl: server.baseUrl, tokenStore: new SlowStore(),
    clock: () => Date.now() / 1000 + offset, fetch: counting,
  });
  return { client, skew: (seconds) => { offset += seconds; }, sent: (path) => counts.get(path) ?? 0 };
}

async function login(client: AppClient, customerId: string): Promise<Token> {
  const { url } = client.connectUrl({ xspe: partner.xspe, customerId, redirectUri: partner.redirectUri, scope: USER_SCOPE });
  const { code, state } = await codeFrom(url);
  return client.exchangeCode(code, { state });
}

for (const [index, mode] of (["client_clock", "server_rejects"] as const).entries()) {
  test(`${CALLERS} concurrent calls on an expired user token (${mode}) share one refresh`, async () => {
    const { client, skew, sent } = harness();
    const customerId = partner.customerIds[index] ?? "";
    const token = await login(client, customerId);
    assert.equal(token.expiresIn, 60);
    await revokeAtServer(server.baseUrl, partner, token.accessToken);
    if (mode === "client_clock") skew(61);
    const atServer = await metrics.requests("refresh_token");
    const me = client.asCustomer(customerId);
    const results = await Promise.all(Array.from({ length: CALLERS }, () => me.get()));
    assert.equal((await metrics.requests("refresh_token")) - atServer, 1);
    assert.equal(sent("/oauth/refresh_token"), 1);
    assert.deepEqual(new Set(results.map((c) => c.customerId)), new Set([customerId]));
    const renewed = await client.userToken(customerId);
    assert.notEqual(renewed.accessToken, token.accessToken);
    assert.equal(sent("/oauth/refresh_token"), 1);
    // Each caller sent its call at most twice: once, and once more after a 40102.
    assert.ok(sent(`/api/spe/customer/${customerId}`) <= 2 * CALLERS);
  });
}

test(`the app token: one fetch for ${CALLERS} first callers, one more after a 40102`, async () => {
  const { client, sent } = harness();
  const atServer = await metrics.requests("credit_token");
  const pages = await Promise.all(Array.from({ length: CALLERS }, () => client.customers.list({ xspe: partner.xspe })));
  const first = await client.appToken();
  await revokeAtServer(server.baseUrl, partner, first.accessToken);
  pages.push(...(await Promise.all(Array.from({ length: CALLERS }, () => client.customers.list({ xspe: partner.xspe })))));
  assert.equal((await metrics.requests("credit_token")) - atServer, 2);
  assert.equal(sent("/oauth/credit/token"), 2);
  assert.deepEqual(new Set(pages.map((p) => p.total)), new Set([partner.customerIds.length]));
  assert.notEqual((await client.appToken()).accessToken, first.accessToken);
});

test("a refresh that fails reaches every waiting caller, and the tokens are dropped once", async () => {
  const { client, skew, sent } = harness();
  const customerId = partner.customerIds[2] ?? "";
  const token = await login(client, customerId);
  await revokeAtServer(server.baseUrl, partner, token.refreshToken ?? ""); // the family is gone
  skew(61);
  const outcomes = await Promise.allSettled(Array.from({ length: CALLERS }, () => client.asCustomer(customerId).get()));
  assert.ok(outcomes.every((o) => o.status === "rejected" && o.reason?.name === "ReauthorizationRequired"));
  assert.equal(sent("/oauth/refresh_token"), 1); // the others found no tokens left and sent nothing
});
