/**
 * An app opened for a whole SPE (issue 13, item 3): `launch.customerId` is null. Every method that
 * puts a customer id into a URL path, a connect URL or a token-store key refuses null, undefined, ""
 * and blanks with `CustomerIdRequired` (a `ValidationError`, field `customerId`) before sending
 * anything — before, `client.customers.get(launch.customerId!)` asked the server for
 * `/api/spe/customer/null`. What docs/sdk.md says to do instead works against a real server, from a
 * launch the real SPE admin portal signed: list the SPE's customers with the app token, connect one.
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { AppClient, CustomerIdRequired, OpenPlatformError, ValidationError } from "../src/index.js";
import { codeFrom, openAppFromPortal, type Partner, PASSWORD, seedPartner, type Server, signIn, startServer, USER_SCOPE } from "./support.js";

let server: Server;
let partner: Partner;

before(async () => {
  server = await startServer();
  partner = await seedPartner(server);
});

after(async () => {
  await server?.stop();
});

/** A client whose `fetch` (the real one) records every request it sends. */
function countingClient(): { client: AppClient; sent: string[] } {
  const sent: string[] = [];
  const counting: typeof fetch = (input, init) => {
    sent.push(`${init?.method ?? "GET"} ${String(input)}`);
    return fetch(input, init);
  };
  const client = new AppClient({ appId: partner.appId, secret: partner.secret, baseUrl: server.baseUrl, fetch: counting });
  return { client, sent };
}

const MISSING: unknown[] = [null, undefined, "", "   "];

function refusal(given: unknown): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof CustomerIdRequired, String(error));
    assert.ok(error instanceof ValidationError && error instanceof OpenPlatformError);
    assert.equal(error.code, 40001);
    assert.equal(error.error, "invalid_request");
    assert.equal(error.field, "customerId");
    assert.equal(error.status, null);
    const shown = given === undefined ? "undefined" : JSON.stringify(given);
    assert.match(error.msg, new RegExp(`^customerId is required \\(got ${shown.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\)`));
    assert.match(error.msg, /client\.customers\.list\(\{ xspe: launch\.xspe \}\)/); // says what to do instead
    return true;
  };
}

describe("a missing customer id", () => {
  test("is refused by every method that needs one, before any request", async () => {
    const { client, sent } = countingClient();
    // The ids come from untyped code (a launch's customerId!, a query parameter): cast as such code would.
    const promised: Record<string, (id: string) => Promise<unknown>> = {
      "customers.get": (id) => client.customers.get(id),
      "customers.update": (id) => client.customers.update(id, { name: "x" }),
      "customers.delete": (id) => client.customers.delete(id),
      "sites.list": (id) => client.sites.list(id),
      "sites.get": (id) => client.sites.get(id, "site_1"),
      "sites.create": (id) => client.sites.create(id, { name: "Shop", domain: "shop.example.com" }),
      "sites.update": (id) => client.sites.update(id, "site_1", { name: "x" }),
      "sites.delete": (id) => client.sites.delete(id, "site_1"),
      userToken: (id) => client.userToken(id),
      refresh: (id) => client.refresh(id),
      forget: (id) => client.forget(id),
      revoke: (id) => client.revoke(id),
    };
    const immediate: Record<string, (id: string) => unknown> = {
      asCustomer: (id) => client.asCustomer(id),
      "sites.iter": (id) => client.sites.iter(id),
      connectUrl: (id) => client.connectUrl({ xspe: partner.xspe, customerId: id, redirectUri: partner.redirectUri }),
    };
    for (const given of MISSING) {
      const id = given as string;
      for (const [name, call] of Object.entries(promised)) {
        await assert.rejects(() => call(id), refusal(given), `${name}(${String(given)})`);
      }
      for (const [name, call] of Object.entries(immediate)) {
        assert.throws(() => call(id), refusal(given), `${name}(${String(given)})`);
      }
    }
    await assert.rejects(() => client.request("GET", "/api/specp/sites", { customerId: "" }), refusal(""));
    assert.deepEqual(sent, []);

    // Without a customer, request() goes with the app token, as documented.
    const page = (await client.request("GET", "/api/spe/customers", { params: { xspe: partner.xspe } })) as { total: number };
    assert.equal(page.total, partner.customerIds.length);
  });
});

describe("an SPE-wide launch from the real portal", () => {
  test("has no customer: the app lists the SPE's customers and connects one", async () => {
    const email = `spe-admin-wide-${Date.now()}@example.com`;
    await server.cli(["user", "create", "--email", email, "--role", "spe-admin", "--xspe", partner.xspe, "--password-stdin"], `${PASSWORD}\n`);
    const browser = await signIn(server.baseUrl, email, PASSWORD);
    const opened = await openAppFromPortal(browser, server.baseUrl, partner.appId, null);
    const { client, sent } = countingClient();
    const launch = client.verifyLaunch(opened.searchParams);
    assert.equal(launch.xspe, partner.xspe);
    assert.equal(launch.customerId, null);
    await assert.rejects(() => client.customers.get(launch.customerId!), CustomerIdRequired);
    assert.deepEqual(sent, []);

    const customers = await client.customers.list({ xspe: launch.xspe });
    assert.deepEqual(customers.items.map((c) => c.customerId).sort(), [...partner.customerIds].sort());
    const picked = customers.items[0]!.customerId;
    const { url } = client.connectUrl({ xspe: launch.xspe, customerId: picked, redirectUri: partner.redirectUri, scope: USER_SCOPE });
    const { code, state } = await codeFrom(url);
    const token = await client.exchangeCode(code, { state });
    assert.equal(token.customerId, picked);
    assert.equal((await client.asCustomer(picked).get()).customerId, picked);
  });
});
