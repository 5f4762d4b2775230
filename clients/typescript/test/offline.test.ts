/**
 * What the SDK decides on its own, without an openplatform server: signatures (checked against
 * the worked example of docs/launch.md and against the Python implementation the server signs
 * with), the state check, the connect URL, the error table, and failures of the network.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, type Server as HttpServer } from "node:http";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { inspect } from "node:util";

import {
  AppClient,
  BY_ERROR,
  InvalidSignature,
  OpenPlatformError,
  RateLimited,
  RequestTimeout,
  ServerError,
  StateMismatch,
  Token,
  TransportError,
  ValidationError,
  signing,
} from "../src/index.js";
import { fromEnvelope } from "../src/errors.js";
import { pkceChallenge, pkceVerifier } from "../src/protocol.js";
import { freePort, REPO } from "./support.js";

const APP_ID = "0123456789abcdef0123456789abcdef";
const SECRET = `s3cret-${"x".repeat(40)}`;
const NOW = 1_800_000_000;

function client(baseUrl = "http://127.0.0.1:9", options: { timeoutMs?: number } = {}): AppClient {
  return new AppClient({ appId: APP_ID, secret: SECRET, baseUrl, clock: () => NOW, ...options });
}

/** The Python the server runs (its venv), to compare the two SDKs byte for byte. */
function python(code: string, input: unknown): Promise<unknown> {
  const venv = join(REPO, ".venv", "bin", "python");
  const bin = process.env.OPENPLATFORM_PYTHON ?? (existsSync(venv) ? venv : "python3");
  return new Promise((done, fail) => {
    const child = execFile(bin, ["-c", code], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) fail(new Error(stderr || error.message));
      else done(JSON.parse(stdout));
    });
    child.stdin?.end(JSON.stringify(input));
  });
}

describe("signed launch", () => {
  test("matches the worked example of docs/launch.md", () => {
    const secret = "5f1d0c3e9b7a4d2f8e6c1b0a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e";
    assert.equal(
      signing.derivedKey(secret, "launch").toString("hex"),
      "2de71fc3e93e92ef1baa43e09c38c7878906a8d02aada3255af366ae883115ac",
    );
    const signed = signing.signLaunch(secret, APP_ID, "spe_1a2b3c4d5e6f7a8b", "cus_9f8e7d6c5b4a3f2e", 1700000000);
    assert.equal(
      signing.launchCanonical(signed),
      `app_id=${APP_ID}&customer_id=cus_9f8e7d6c5b4a3f2e&timestamp=1700000000&xspe=spe_1a2b3c4d5e6f7a8b`,
    );
    assert.equal(signed.signature, "dd5fd608f8943c31b6cd8fb1f6156a272165ce34abbde781afb781ef257c5e28");
    const speWide = signing.signLaunch(secret, APP_ID, "spe_1a2b3c4d5e6f7a8b", null, 1700000000);
    assert.equal(speWide.signature, "1fd9d0843d9bb367ca5fe11abe9999869738e6cffbe93e71a088bf8e006a36e7");
  });

  test("the Python SDK (what the server signs with) and this one agree on any characters", async () => {
    const values = ["spe_1", "a b+c", "*~'!()", "é/ü?&=#", "%41", "中文", "😀", ""];
    const cases = values.map((v, n) => ({ xspe: `x${v}`, customer_id: v, timestamp: 1_700_000_000 + n }));
    const fromPython = (await python(
      "import json, sys\nfrom openplatform_client.signing import sign_launch, launch_canonical\n" +
        "cases = json.load(sys.stdin)\n" +
        "out = [sign_launch('k€y', 'app', c['xspe'], c['customer_id'], c['timestamp']) for c in cases]\n" +
        "print(json.dumps([[launch_canonical(o), o['signature']] for o in out]))",
      cases,
    )) as [string, string][];
    cases.forEach((c, n) => {
      const ours = signing.signLaunch("k€y", "app", c.xspe, c.customer_id, c.timestamp);
      assert.deepEqual([signing.launchCanonical(ours), ours.signature], fromPython[n], JSON.stringify(c));
      assert.ok(signing.verifyLaunch("k€y", new URLSearchParams(ours), c.timestamp + 10));
    });
  });

  test("verifyLaunch returns who opened the app, from URLSearchParams or a plain object", () => {
    const params = signing.signLaunch(SECRET, APP_ID, "spe_1", "cus_1", NOW - 10);
    assert.deepEqual(client().verifyLaunch(new URLSearchParams(params)), {
      appId: APP_ID, xspe: "spe_1", customerId: "cus_1", timestamp: NOW - 10,
    });
    const speWide = client().verifyLaunch(signing.signLaunch(SECRET, APP_ID, "spe_1", null, NOW));
    assert.equal(speWide.customerId, null);
    const express = { ...params, customer_id: [params.customer_id ?? ""] };
    assert.equal(client().verifyLaunch(express).customerId, "cus_1");
  });

  const refused: [string, Record<string, string>, string][] = [
    ["altered after signing", { ...signing.signLaunch(SECRET, APP_ID, "spe_1", "cus_1", NOW), customer_id: "cus_2" }, "signature"],
    ["a made-up signature", { ...signing.signLaunch(SECRET, APP_ID, "spe_1", "cus_1", NOW), signature: "0".repeat(64) }, "signature"],
    ["a non-ASCII signature", { ...signing.signLaunch(SECRET, APP_ID, "spe_1", "cus_1", NOW), signature: "é".repeat(64) }, "signature"],
    ["too old", signing.signLaunch(SECRET, APP_ID, "spe_1", "cus_1", NOW - 301), "signature"],
    ["from the future", signing.signLaunch(SECRET, APP_ID, "spe_1", "cus_1", NOW + 301), "signature"],
    ["another secret", signing.signLaunch("another-secret", APP_ID, "spe_1", "cus_1", NOW), "signature"],
    ["another app", signing.signLaunch(SECRET, "f".repeat(32), "spe_1", "cus_1", NOW), "app_id"],
    ["no xspe", signing.signLaunch(SECRET, APP_ID, "", "cus_1", NOW), "xspe"],
    ["a timestamp that is not digits", { ...signing.signLaunch(SECRET, APP_ID, "spe_1", "cus_1", NOW), timestamp: "1e9" }, "signature"],
    ["nothing", {}, "signature"],
  ];
  for (const [name, params, field] of refused) {
    test(`refuses a launch: ${name}`, () => {
      assert.throws(() => client().verifyLaunch(params), (error: unknown) => {
        assert.ok(error instanceof InvalidSignature && error instanceof OpenPlatformError);
        assert.equal(error.field, field);
        assert.equal(error.code, 40001);
        assert.equal(error.error, "invalid_request");
        return true;
      });
    });
  }
});

describe("webhooks", () => {
  function notification(overrides: Record<string, unknown> = {}, secret = SECRET): string {
    const expiration = (NOW + 300) * 1000;
    return JSON.stringify({
      type: 2, customer_id: "cus_1", action_time: NOW * 1000, expiration_time: expiration,
      signature: signing.legacyNotificationSignature(APP_ID, secret, expiration), app_id: APP_ID, xspe: "spe_1",
      event_id: "evt_1", ...overrides,
    });
  }

  test("a signed notification is read, with raw bytes and any header case or shape", () => {
    const body = notification();
    const headers = signing.signWebhook(SECRET, body, NOW);
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), [v]]));
    for (const given of [headers, lower, new Headers(headers)]) {
      const event = client().verifyWebhook(Buffer.from(body), given);
      assert.equal(event.type, 2);
      assert.ok(event.uninstalled && !event.installed);
      assert.equal(event.customerId, "cus_1");
      assert.equal(event.eventId, "evt_1");
      assert.equal(event.xspe, "spe_1");
    }
    const speWide = notification({ type: 1, customer_id: "" });
    assert.equal(client().verifyWebhook(speWide, signing.signWebhook(SECRET, speWide, NOW)).customerId, null);
  });

  test("the MD5 field and the HMAC header are the Python ones", async () => {
    const body = notification({ customer_id: "cus_é 1" });
    const fromPython = (await python(
      "import json, sys\nfrom openplatform_client.signing import sign_webhook, legacy_notification_signature\n" +
        "d = json.load(sys.stdin)\n" +
        "print(json.dumps([sign_webhook('" + SECRET + "', d['body'].encode(), d['ts']), " +
        "legacy_notification_signature('" + APP_ID + "', '" + SECRET + "', d['exp'])]))",
      { body, ts: NOW, exp: 1_800_000_300_000 },
    )) as [Record<string, string>, string];
    assert.deepEqual(signing.signWebhook(SECRET, body, NOW), fromPython[0]);
    assert.equal(signing.legacyNotificationSignature(APP_ID, SECRET, 1_800_000_300_000), fromPython[1]);
  });

  const refused: [string, () => [string, Record<string, string>]][] = [
    ["a body altered after signing", () => [notification({ type: 1 }), signing.signWebhook(SECRET, notification(), NOW)]],
    ["an old timestamp", () => [notification(), signing.signWebhook(SECRET, notification(), NOW - 301)]],
    ["another secret", () => [notification(), signing.signWebhook("other", notification(), NOW)]],
    ["no headers", () => [notification(), {}]],
    ["a wrong MD5 field", () => {
      const body = notification({ signature: "0".repeat(32) });
      return [body, signing.signWebhook(SECRET, body, NOW)];
    }],
    ["an expired MD5 field", () => {
      const body = notification({ expiration_time: (NOW - 1) * 1000, signature: signing.legacyNotificationSignature(APP_ID, SECRET, (NOW - 1) * 1000) });
      return [body, signing.signWebhook(SECRET, body, NOW)];
    }],
    ["a body that is not JSON", () => ["nope", signing.signWebhook(SECRET, "nope", NOW)]],
  ];
  for (const [name, make] of refused) {
    test(`refuses a webhook: ${name}`, () => {
      const [body, headers] = make();
      assert.throws(() => client().verifyWebhook(body, headers), InvalidSignature);
    });
  }
});

describe("connect and the state", () => {
  test("the connect URL carries the documented parameters, a new state and PKCE (S256)", async () => {
    const { url, state } = client("https://open.example.com/").connectUrl({
      xspe: "spe_1", customerId: "cus_1", redirectUri: "https://app.example.com/callback", scope: "install_login site:read",
    });
    const parsed = new URL(url);
    assert.equal(`${parsed.origin}${parsed.pathname}`, "https://open.example.com/oauth/connect");
    const q = Object.fromEntries(parsed.searchParams);
    assert.equal(q.app_id, APP_ID);
    assert.equal(q.response_type, "code");
    assert.equal(q.redirect_uri, "https://app.example.com/callback");
    assert.equal(q.scope, "install_login site:read");
    assert.equal(q.xspe, "spe_1");
    assert.equal(q.customer_id, "cus_1");
    assert.equal(q.state, state);
    assert.match(state, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(q.code_challenge_method, "S256");
    assert.equal(q.code_challenge, pkceChallenge(pkceVerifier(SECRET, state)));
    const fromPython = await python(
      "import json, sys\nfrom openplatform_client.protocol import pkce_verifier\n" +
        `print(json.dumps(pkce_verifier('${SECRET}', json.load(sys.stdin))))`,
      state,
    );
    assert.equal(pkceVerifier(SECRET, state), fromPython); // an app may run both SDKs on one connect
    assert.notEqual(client().connectUrl({ xspe: "a", customerId: "b", redirectUri: "c" }).state, state);
  });

  test("a callback whose state does not match is refused before anything is sent", async () => {
    let sent = 0;
    const counting: typeof fetch = async () => {
      sent += 1;
      return new Response("{}");
    };
    const app = new AppClient({ appId: APP_ID, secret: SECRET, baseUrl: "http://127.0.0.1:9", fetch: counting });
    const { state } = app.connectUrl({ xspe: "spe_1", customerId: "cus_1", redirectUri: "https://a.example/cb" });
    for (const options of [
      { state: "forged", expectedState: state },
      { state: "forged" }, // never issued by this client
      { state: null, expectedState: state },
      { state: `${state}x`, expectedState: state },
    ]) {
      await assert.rejects(app.exchangeCode("code", options), (error: unknown) => {
        assert.ok(error instanceof StateMismatch);
        assert.equal(error.field, "state");
        return true;
      });
    }
    assert.equal(sent, 0);
  });

  test("the client needs its credentials and never shows the secret", () => {
    assert.throws(() => new AppClient({ appId: "", secret: SECRET, baseUrl: "http://x" }), ValidationError);
    const app = client();
    assert.ok(!inspect(app, { depth: 5 }).includes(SECRET));
    assert.ok(!String(app).includes(SECRET));
    assert.ok(!JSON.stringify(app).includes(SECRET));
  });
});

describe("tokens", () => {
  test("a token is due within its margin, capped at a quarter of its life", () => {
    const token = new Token({ accessToken: "a", expiresIn: 60, expiresAt: 1060 });
    assert.equal(token.due(1044, 60), false); // margin capped to 15 s
    assert.equal(token.due(1045, 60), true);
    const long = new Token({ accessToken: "a", expiresIn: 7200, expiresAt: 8200 });
    assert.equal(long.due(8139, 60), false);
    assert.equal(long.due(8140, 60), true);
  });

  test("the JSON form is the Python SDK's, and token values stay out of logs", async () => {
    const token = new Token({
      accessToken: "access-value", expiresIn: 60, expiresAt: 1234.5, refreshToken: "refresh-value",
      scope: "install_login", customerId: "cus_1", xspe: "spe_1",
    });
    const fromPython = await python(
      "import json, sys\nfrom openplatform_client import Token\n" +
        "t = Token.from_dict(json.load(sys.stdin))\nprint(json.dumps(t.to_dict()))",
      token.toJSON(),
    );
    assert.deepEqual(fromPython, token.toJSON());
    assert.deepEqual(Token.fromJSON(JSON.stringify(token)), token);
    assert.equal(`Bearer ${token}`, "Bearer access-value");
    assert.ok(!inspect(token).includes("access-value") && !inspect(token).includes("refresh-value"));
    assert.deepEqual(token.scopes, new Set(["install_login"]));
  });
});

describe("errors", () => {
  test("every code of the server's table has its class (the Python SDK's name), all OpenPlatformError", async () => {
    const table = (await python(
      "import json\nfrom openplatform.errors import ERRORS\nfrom openplatform_client.errors import BY_ERROR\n" +
        "print(json.dumps([[k.code, k.error, k.status, BY_ERROR[k.error].__name__] for k in ERRORS.values()]))",
      null,
    )) as [number, string, number, string][];
    assert.ok(table.length >= 15);
    for (const [code, error, status, pythonClass] of table) {
      const kind = BY_ERROR.get(error);
      assert.ok(kind, `no class for ${error}`);
      assert.equal(kind.defaultCode, code);
      assert.equal(kind.name, pythonClass); // the same class names in both SDKs
      const raised = fromEnvelope({ code, msg: "words", error, field: "x" }, status, { "retry-after": "3" });
      assert.ok(raised instanceof kind && raised instanceof OpenPlatformError && raised instanceof Error);
      assert.deepEqual([raised.code, raised.error, raised.msg, raised.field, raised.status], [code, error, "words", "x", status]);
      assert.equal(raised.name, kind.name);
      if (raised instanceof RateLimited) assert.equal(raised.retryAfter, 3);
    }
    // An unknown error string falls back on the code, then on the status.
    assert.equal(fromEnvelope({ code: 40401, msg: "m", error: "new" }, 404, {}).constructor.name, "NotFound");
    assert.ok(fromEnvelope({ code: 59999, msg: "m" }, 503, {}) instanceof ServerError);
  });

  async function withServer(handler: Parameters<typeof createServer>[1], run: (base: string) => Promise<void>): Promise<void> {
    const server: HttpServer = createServer(handler);
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    try {
      await run(`http://127.0.0.1:${port}`);
    } finally {
      server.closeAllConnections?.();
      await new Promise((done) => server.close(done));
    }
  }

  test("no server: TransportError (50301), tried twice when nothing was sent", async () => {
    const port = await freePort();
    let attempts = 0;
    const counting: typeof fetch = (input, init) => {
      attempts += 1;
      return fetch(input, init);
    };
    const app = new AppClient({ appId: APP_ID, secret: SECRET, baseUrl: `http://127.0.0.1:${port}`, fetch: counting });
    await assert.rejects(app.appToken(), (error: unknown) => {
      assert.ok(error instanceof TransportError && !(error instanceof RequestTimeout));
      assert.deepEqual([error.code, error.error, error.status], [50301, "temporarily_unavailable", null]);
      return true;
    });
    assert.equal(attempts, 2);
  });

  test("an answer without an envelope (a proxy's error page) is a ServerError", async () => {
    await withServer((_req, res) => {
      res.writeHead(502, { "content-type": "text/html" }).end("<h1>Bad gateway</h1>");
    }, async (base) => {
      await assert.rejects(client(base).appToken(), (error: unknown) => {
        assert.ok(error instanceof ServerError);
        assert.equal(error.status, 502);
        return true;
      });
    });
  });

  test("a server that does not answer in time: RequestTimeout, not retried", async () => {
    let requests = 0;
    await withServer(() => {
      requests += 1; // never answers
    }, async (base) => {
      const started = Date.now();
      await assert.rejects(client(base, { timeoutMs: 300 }).customers.list(), RequestTimeout);
      assert.ok(Date.now() - started < 3000);
      assert.equal(requests, 1);
    });
  });

  test("a token endpoint's error envelope becomes its class, with the answer's headers", async () => {
    await withServer((_req, res) => {
      res.writeHead(429, { "content-type": "application/json", "retry-after": "7" });
      res.end(JSON.stringify({ code: 42901, msg: "Slow down.", error: "rate_limited", result: null }));
    }, async (base) => {
      await assert.rejects(client(base).appToken(), (error: unknown) => {
        assert.ok(error instanceof RateLimited);
        assert.equal(error.retryAfter, 7);
        assert.equal(error.msg, "Slow down.");
        assert.match(error.message, /^42901 rate_limited: Slow down\.$/);
        return true;
      });
    });
  });
});
