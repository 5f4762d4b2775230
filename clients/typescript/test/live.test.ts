/**
 * The SDK against a real `openplatform serve` started here, seeded with the server's CLI: the
 * documented flow, the Open APIs with pagination, errors from the server, the retry on an expired
 * token, re-authorisation, a pluggable token store, launches made by the real SPE admin portal,
 * and webhooks the server really sends. Single-flight renewal has its own file.
 */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import { after, before, describe, test } from "node:test";

import {
  AppClient,
  Conflict,
  type Customer,
  InsufficientScope,
  InvalidClientError,
  InvalidGrantError,
  InvalidSignature,
  InvalidTokenError,
  NotFound,
  OpenPlatformError,
  ReauthorizationRequired,
  Token,
  type TokenStore,
  ValidationError,
  WEBHOOK_ACK,
  type WebhookEvent,
} from "../src/index.js";
import {
  codeFrom,
  freePort,
  Metrics,
  openAppFromPortal,
  type Partner,
  PASSWORD,
  revokeAtServer,
  seedPartner,
  type Server,
  signIn,
  sleep,
  startServer,
  USER_SCOPE,
} from "./support.js";

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

function newClient(extra: Partial<ConstructorParameters<typeof AppClient>[0]> = {}): AppClient {
  return new AppClient({ appId: partner.appId, secret: partner.secret, baseUrl: server.baseUrl, ...extra });
}

/** connect → the platform's redirect (one real HTTP hop, like a browser) → exchange. */
async function login(client: AppClient, customerId = partner.customerIds[0] ?? ""): Promise<Token> {
  const { url } = client.connectUrl({ xspe: partner.xspe, customerId, redirectUri: partner.redirectUri, scope: USER_SCOPE });
  const { code, state } = await codeFrom(url);
  return client.exchangeCode(code, { state });
}

describe("the documented flow", () => {
  test("connect, exchange, and the customer's own record and sites with its user token", async () => {
    const client = newClient();
    const customerId = partner.customerIds[0] ?? "";
    const token = await login(client, customerId);
    assert.equal(token.customerId, customerId);
    assert.equal(token.xspe, partner.xspe);
    assert.equal(token.expiresIn, 60);
    assert.deepEqual(token.scopes, new Set(USER_SCOPE.split(" ")));
    assert.ok(token.refreshToken);

    const me = client.asCustomer(customerId);
    const customer = await me.get();
    assert.equal(customer.customerId, customerId);
    assert.equal(customer.name, "Customer 1");

    const shop = await me.sites.create({ name: "Shop", domain: "shop.one.example" });
    assert.equal(shop.customerId, customerId);
    for (let n = 0; n < 4; n += 1) await me.sites.create({ name: `S${n}`, domain: `s${n}.one.example` });
    const first = await me.sites.list({ pageSize: 2 });
    assert.deepEqual([first.total, first.items.length, first.page, first.pageSize, first.hasNext], [5, 2, 1, 2, true]);
    const all = [];
    for await (const site of me.sites.iter({ pageSize: 2 })) all.push(site.domain);
    assert.equal(all.length, 5);
    assert.ok(all.includes("shop.one.example"));

    const renamed = await me.sites.update(shop.siteId, { name: "Store", version: shop.version });
    assert.equal(renamed.name, "Store");
    await assert.rejects(me.sites.update(shop.siteId, { name: "Stale", version: shop.version }), Conflict);
    assert.equal((await me.sites.get(shop.siteId)).name, "Store");
    await assert.rejects(me.sites.create({ name: "Bad", domain: "http://bad/" }), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.field, "domain");
      return true;
    });
    await me.sites.delete(shop.siteId);
    await assert.rejects(me.sites.get(shop.siteId), NotFound);
  });

  test("the app token is fetched once and cached; customers and sites with it", async () => {
    let tokenRequests = 0;
    const counting: typeof fetch = (input, init) => {
      if (String(input).includes("/oauth/credit/token")) tokenRequests += 1;
      return fetch(input, init);
    };
    const client = newClient({ fetch: counting });
    const page = await client.customers.list({ xspe: partner.xspe, pageSize: 2 });
    assert.deepEqual([page.total, page.items.length, page.hasNext], [3, 2, true]);
    const names: string[] = [];
    for await (const customer of client.customers.iter({ pageSize: 1 })) names.push(customer.name);
    assert.deepEqual(names.sort(), ["Customer 1", "Customer 2", "Customer 3"]);
    assert.equal((await client.appToken()).accessToken, (await client.appToken()).accessToken);
    assert.equal(tokenRequests, 1);

    const created: Customer = await client.customers.create({ name: "Acme", contact: "ops@acme.example", xspe: partner.xspe });
    assert.equal(created.xspe, partner.xspe);
    const updated = await client.customers.update(created.customerId, { name: "Acme Ltd", version: created.version });
    assert.equal(updated.name, "Acme Ltd");
    assert.equal((await client.customers.get(created.customerId)).contact, "ops@acme.example");
    const site = await client.sites.create(created.customerId, { name: "Web", domain: "www.acme.example" });
    assert.equal((await client.sites.list(created.customerId)).items[0]?.siteId, site.siteId);
    assert.equal((await client.sites.update(created.customerId, site.siteId, { status: "paused" })).status, "paused");
    assert.equal((await client.sites.get(created.customerId, site.siteId)).domain, "www.acme.example");
    await client.sites.delete(created.customerId, site.siteId);
    await client.customers.delete(created.customerId);
    await assert.rejects(client.customers.get(created.customerId), NotFound);
    const result = (await client.request("GET", "/api/spe/customers", { params: { page_size: 1 } })) as { total: number };
    assert.equal(result.total, 3);
  });

  test("errors the server answers arrive as their class, carrying code, msg and error", async () => {
    await assert.rejects(newClient({ secret: "wrong" }).appToken(), (error: unknown) => {
      assert.ok(error instanceof InvalidClientError && error instanceof OpenPlatformError);
      assert.deepEqual([error.code, error.error, error.status], [40101, "invalid_client", 401]);
      assert.ok(error.msg.length > 0);
      return true;
    });
    const client = newClient();
    const { url } = client.connectUrl({ xspe: partner.xspe, customerId: partner.customerIds[1] ?? "", redirectUri: partner.redirectUri });
    const { code, state } = await codeFrom(url);
    await client.exchangeCode(code, { state: state, expectedState: state });
    await assert.rejects(client.exchangeCode(code, { state, expectedState: state }), InvalidGrantError); // used twice
    // The replay revoked the tokens of that code (RFC 6749 §4.1.2); a new connect gets new ones.
    await assert.rejects(client.asCustomer(partner.customerIds[1] ?? "").get(), ReauthorizationRequired);
    await login(client, partner.customerIds[1]);
    // A user token lacks customer:write; another SPE's customer is out of reach.
    await assert.rejects(
      client.request("PUT", `/api/spe/customer/${partner.customerIds[1]}`, { customerId: partner.customerIds[1] ?? "", json: { name: "x" } }),
      InsufficientScope,
    );
    await assert.rejects(client.customers.get("cus_0000000000000000"), NotFound);
    const other = await server.cli(["spe", "create", "--name", "Other SPE"]);
    const stranger = await server.cli(["customer", "create", "--xspe", String(other.xspe), "--name", "Stranger"]);
    const foreign = client.connectUrl({ xspe: String(other.xspe), customerId: String(stranger.customer_id), redirectUri: partner.redirectUri });
    const refused = await fetch(foreign.url, { redirect: "manual" });
    const location = new URL(refused.headers.get("location") ?? "http://x/");
    assert.equal(location.searchParams.get("error"), "access_denied"); // not installed there (RFC 6749 §4.1.2.1)
  });
});

describe("tokens over time", () => {
  test("an access token the server no longer accepts is renewed once and the call retried", async () => {
    const client = newClient();
    const customerId = partner.customerIds[2] ?? "";
    const token = await login(client, customerId);
    await revokeAtServer(server.baseUrl, partner, token.accessToken);
    const before = await metrics.requests("refresh_token");
    assert.equal((await client.asCustomer(customerId).get()).customerId, customerId);
    assert.equal((await metrics.requests("refresh_token")) - before, 1);
    const renewed = await client.userToken(customerId);
    assert.notEqual(renewed.accessToken, token.accessToken);
    assert.notEqual(renewed.refreshToken, token.refreshToken); // rotated (SPEC §2.3)
  });

  test("a token that is refused again after the renewal is InvalidTokenError", async () => {
    const client = newClient({
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        if (String(input).includes("/api/")) headers.set("authorization", "Bearer not-a-token");
        return fetch(input, { ...init, headers });
      },
    });
    await assert.rejects(client.customers.list(), InvalidTokenError);
  });

  test("a refused refresh drops the tokens and asks for re-authorisation", async () => {
    const client = newClient();
    const customerId = partner.customerIds[0] ?? "";
    const token = await login(client, customerId);
    await revokeAtServer(server.baseUrl, partner, token.refreshToken ?? ""); // the whole family (RFC 7009)
    await assert.rejects(client.asCustomer(customerId).get(), (error: unknown) => {
      assert.ok(error instanceof ReauthorizationRequired);
      assert.equal(error.customerId, customerId);
      assert.deepEqual([error.code, error.error], [40006, "invalid_grant"]);
      return true;
    });
    assert.equal(await client.tokens.get(`${partner.appId}:customer:${customerId}`), undefined);
    await assert.rejects(client.asCustomer("cus_never_connected").get(), (error: unknown) => {
      assert.ok(error instanceof ReauthorizationRequired);
      assert.equal(error.code, 40102);
      return true;
    });
    await login(client, customerId); // connecting again works while the app stays installed
    assert.equal((await client.asCustomer(customerId).get()).customerId, customerId);
  });

  test("revoke ends the whole family; introspect tells what the server knows", async () => {
    const client = newClient();
    const customerId = partner.customerIds[1] ?? "";
    const token = await login(client, customerId);
    const facts = await client.introspect(token.accessToken);
    assert.equal(facts.active, true);
    assert.equal(facts.customer_id, customerId);
    await client.revoke(customerId);
    assert.equal((await client.introspect(token.accessToken)).active, false);
    await assert.rejects(client.asCustomer(customerId).get(), ReauthorizationRequired);
  });

  test("a pluggable, asynchronous token store holds the tokens under the documented keys", async () => {
    const saved = new Map<string, string>();
    const store: TokenStore = {
      async get(key) {
        await sleep(2);
        const raw = saved.get(key);
        return raw === undefined ? null : Token.fromJSON(raw);
      },
      async set(key, token) {
        await sleep(2);
        saved.set(key, JSON.stringify(token));
      },
      async delete(key) {
        saved.delete(key);
      },
    };
    const customerId = partner.customerIds[2] ?? "";
    const first = newClient({ tokenStore: store });
    await login(first, customerId);
    await first.customers.list();
    assert.deepEqual([...saved.keys()].sort(), [`${partner.appId}:app`, `${partner.appId}:customer:${customerId}`]);
    const stored = JSON.parse(saved.get(`${partner.appId}:customer:${customerId}`) ?? "{}") as Record<string, unknown>;
    assert.deepEqual(Object.keys(stored).sort(), ["access_token", "customer_id", "expires_at", "expires_in", "refresh_token", "scope", "xspe"]);
    // Another process of the app (another client on the same store) uses the stored tokens.
    const second = newClient({ tokenStore: store });
    assert.equal((await second.asCustomer(customerId).get()).customerId, customerId);
    await second.forget(customerId);
    assert.equal(saved.has(`${partner.appId}:customer:${customerId}`), false);
  });
});

describe("signed launches from the real SPE admin portal", () => {
  test("Open app sends a launch the SDK accepts; altered, it is refused", async () => {
    const email = `spe-admin-${Date.now()}@example.com`;
    await server.cli(["user", "create", "--email", email, "--role", "spe-admin", "--xspe", partner.xspe, "--password-stdin"], `${PASSWORD}\n`);
    const browser = await signIn(server.baseUrl, email, PASSWORD);
    const client = newClient();
    const customerId = partner.customerIds[0] ?? "";

    const launch = await openAppFromPortal(browser, server.baseUrl, partner.appId, customerId);
    assert.equal(`${launch.origin}${launch.pathname}`, "http://localhost:9000/"); // the app's host_url
    const verified = client.verifyLaunch(launch.searchParams);
    assert.equal(verified.appId, partner.appId);
    assert.equal(verified.xspe, partner.xspe);
    assert.equal(verified.customerId, customerId);
    assert.ok(Math.abs(verified.timestamp - Date.now() / 1000) < 60);

    const speWide = await openAppFromPortal(browser, server.baseUrl, partner.appId, null);
    assert.equal(client.verifyLaunch(speWide.searchParams).customerId, null);

    const altered = new URLSearchParams(launch.searchParams);
    altered.set("customer_id", partner.customerIds[1] ?? "");
    assert.throws(() => client.verifyLaunch(altered), InvalidSignature);
    const otherApp = new AppClient({ appId: "f".repeat(32), secret: partner.secret, baseUrl: server.baseUrl });
    assert.throws(() => otherApp.verifyLaunch(launch.searchParams), (error: unknown) => {
      assert.ok(error instanceof InvalidSignature);
      assert.equal(error.field, "app_id");
      return true;
    });

    // The launch goes on into the documented flow: connect for that customer, exchange, call.
    const { url } = client.connectUrl({ xspe: verified.xspe, customerId: verified.customerId ?? "", redirectUri: partner.redirectUri });
    const { code, state } = await codeFrom(url);
    const token = await client.exchangeCode(code, { state, expectedState: state });
    assert.equal((await client.asCustomer(token.customerId ?? "").get()).customerId, customerId);
  });
});

describe("webhooks the server sends", () => {
  test("install and uninstall notifications verify (HMAC header and MD5 field); an altered one does not", async () => {
    const received: { body: Buffer; headers: IncomingMessage["headers"] }[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        received.push({ body: Buffer.concat(chunks), headers: req.headers });
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(WEBHOOK_ACK));
      });
    });
    const port = await freePort();
    await new Promise<void>((done) => receiver.listen(port, "127.0.0.1", done));
    try {
      const hooked = await seedPartner(server, { webhookUrl: `http://localhost:${port}/webhook`, customers: 1 });
      const client = new AppClient({ appId: hooked.appId, secret: hooked.secret, baseUrl: server.baseUrl });
      await server.cli(["uninstall", "--app-id", hooked.appId, "--xspe", hooked.xspe]);
      for (let n = 0; n < 100 && received.length < 2; n += 1) await sleep(100);
      const events: WebhookEvent[] = received.map(({ body, headers }) => client.verifyWebhook(body, headers));
      assert.deepEqual(events.map((e) => [e.type, e.installed, e.uninstalled]), [[1, true, false], [2, false, true]]);
      for (const event of events) {
        assert.equal(event.customerId, null); // installed for the whole SPE
        assert.equal(event.xspe, hooked.xspe);
        assert.equal(event.appId, hooked.appId);
        assert.ok(event.eventId && event.expirationTime > event.actionTime);
      }
      const [first] = received;
      assert.ok(first);
      const altered = Buffer.from(first.body.toString().replace('"type":1', '"type":2'));
      assert.notDeepEqual(altered, first.body);
      assert.throws(() => client.verifyWebhook(altered, first.headers), InvalidSignature);
    } finally {
      receiver.closeAllConnections?.();
      await new Promise((done) => receiver.close(done));
    }
  });
});
