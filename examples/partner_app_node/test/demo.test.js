/**
 * The Node.js example run exactly as its README says, next to `openplatform demo`: the demo is
 * started (on free ports, `--port` and `--app-url`), the example with the command the demo prints,
 * and a browser is played over real HTTP: the SPE admin signs in to the portal and clicks "Open
 * app" (a real signed launch) → the app's entrance → /oauth/connect → /callback (code exchange) →
 * the customer's sites (Open API, user token) → a site added → the SPE-wide launch → the SPE's
 * customers (Open API, app token). A tampered launch is refused.
 *
 * The server binary: $OPENPLATFORM_BIN, else the repository's .venv/bin/openplatform.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const EXAMPLE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const REPO = resolve(EXAMPLE, "../..");
const children = [];
let work;

function openplatformBin() {
  if (process.env.OPENPLATFORM_BIN) return process.env.OPENPLATFORM_BIN;
  const venv = join(REPO, ".venv", "bin", "openplatform");
  return existsSync(venv) ? venv : "openplatform";
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** Start a process; resolve once `ready(output)` holds for what it printed so far. */
function start(command, args, options, ready) {
  const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  return new Promise((done, fail) => {
    const check = () => {
      const found = ready(out, err);
      if (found) done({ child, found, output: () => out + err });
    };
    child.stdout.on("data", (chunk) => { out += chunk; check(); });
    child.stderr.on("data", (chunk) => { err += chunk; check(); });
    child.once("exit", (code) => fail(new Error(`${command} exited (${code}): ${out}${err}`)));
    setTimeout(() => fail(new Error(`${command} not ready in 60 s: ${out}${err}`)), 60_000).unref();
  });
}

async function until(url) {
  for (let n = 0; n < 300; n += 1) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`${url} does not answer`);
}

/** A browser: cookies per host, redirects followed by hand so the hops can be checked. */
class Browser {
  jars = new Map();

  async request(url, { form } = {}) {
    const target = new URL(url);
    const jar = this.jars.get(target.host) ?? new Map();
    this.jars.set(target.host, jar);
    const headers = jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } : {};
    const response = await fetch(target, {
      method: form ? "POST" : "GET", headers, body: form ? new URLSearchParams(form) : undefined, redirect: "manual",
    });
    for (const line of response.headers.getSetCookie?.() ?? []) {
      const [pair] = line.split(";");
      const at = pair.indexOf("=");
      const value = pair.slice(at + 1).trim();
      if (value && !/max-age=0/i.test(line)) jar.set(pair.slice(0, at).trim(), value);
      else jar.delete(pair.slice(0, at).trim());
    }
    return response;
  }

  async follow(url, init) {
    let response = await this.request(url, init);
    const hops = [new URL(url)];
    while (response.status >= 300 && response.status < 400 && response.headers.get("location")) {
      const next = new URL(response.headers.get("location"), hops.at(-1));
      hops.push(next);
      response = await this.request(next.href);
    }
    return { response, hops: hops.map((u) => `${u.host}${u.pathname}`), text: await response.text() };
  }
}

function csrfIn(html, name = "csrf_token") {
  const found = new RegExp(`name="${name}" value="([^"]+)"`).exec(html);
  assert.ok(found, html.slice(0, 400));
  return found[1];
}

let demo;
let facts;
let appUrl;
let serverHost;

before(async () => {
  work = await mkdtemp(join(tmpdir(), "openplatform-node-example-"));
  const [port, appPort] = [await freePort(), await freePort()];
  appUrl = `http://localhost:${appPort}`;
  demo = await start(openplatformBin(), ["demo", "--port", String(port), "--app-url", appUrl], { cwd: work },
    (out, err) => out.includes("\n") && err.includes("node server.js") && err.includes("Uvicorn running"));
  facts = JSON.parse(demo.output().split("\n")[0]);
  serverHost = new URL(facts.base_url).host;
  // The command the demo printed for this example, run as printed (its variables, then `node server.js`).
  const line = demo.output().split("\n").find((l) => l.includes("/examples/partner_app_node && ") && l.trim().endsWith(" node server.js"));
  const assignments = line.split("&&")[1].trim().replace(/\s+node server\.js$/, "").split(/\s+/);
  const env = { PATH: process.env.PATH, ...Object.fromEntries(assignments.map((a) => a.split("=", 2))) };
  assert.deepEqual(Object.keys(env).sort(), ["APP_ID", "APP_SECRET", "OPENPLATFORM_URL", "PATH", "PORT"]);
  await start(process.execPath, ["server.js"], { cwd: EXAMPLE, env }, (out) => out.includes("partner app on"));
  await until(`${appUrl}/`);
});

after(async () => {
  for (const child of children) child.kill("SIGTERM");
  await sleep(200);
  if (work) await rm(work, { recursive: true, force: true });
});

test("a signed launch from the portal → connect → exchange → the Open APIs, in the Node.js example", async () => {
  const admin = facts.accounts.find((a) => a.role === "spe-admin");
  const portal = new Browser();
  const form = await portal.request(`${facts.base_url}/login`);
  const signedIn = await portal.request(`${facts.base_url}/login`, {
    form: { csrf_token: csrfIn(await form.text()), email: admin.email, password: admin.password },
  });
  assert.equal(signedIn.status, 303);
  const home = await (await portal.request(`${facts.base_url}/portal`)).text();
  const openApp = async (customerId) => {
    const answer = await portal.request(`${facts.base_url}/portal/launch`, {
      form: { csrf_token: csrfIn(home), app_id: facts.app_id, customer_id: customerId },
    });
    assert.equal(answer.status, 303);
    return answer.headers.get("location");
  };

  // The SPE admin opens the app for the customer: entrance → connect → callback → sites (user token).
  const launch = await openApp(facts.customer_id);
  assert.ok(launch.startsWith(`${appUrl}/?`), launch);
  const app = new Browser();
  const sites = await app.follow(launch);
  const appHost = new URL(appUrl).host;
  assert.deepEqual(sites.hops, [`${appHost}/`, `${serverHost}/oauth/connect`, `${appHost}/callback`, `${appHost}/sites`]);
  assert.equal(sites.response.status, 200);
  assert.match(sites.text, /Signed in as customer <b>Demo Customer<\/b>/);
  assert.ok(sites.text.includes(facts.customer_id));

  // A site added through the form is really at the platform (the page lists it from the Open API).
  const added = await app.follow(`${appUrl}/sites`, { form: { csrf: csrfIn(sites.text, "csrf"), name: "Shop", domain: "shop.demo.example" } });
  assert.equal(added.response.status, 200);
  assert.ok(added.text.includes("shop.demo.example"));
  const refused = await app.request(`${appUrl}/sites`, { form: { csrf: "guess", name: "X", domain: "x.example" } });
  assert.equal(refused.status, 403);

  // A launch altered after signing is refused at the entrance.
  const tampered = launch.replace(/customer_id=[^&]+/, "customer_id=cus_0000000000000000");
  assert.equal((await new Browser().request(tampered)).status, 403);

  // The SPE-wide launch: the SPE's customers, listed with the app token.
  const speWide = await new Browser().follow(await openApp(""));
  assert.deepEqual(speWide.hops, [`${appHost}/`, `${appHost}/spe`]);
  assert.ok(speWide.text.includes("Demo Customer") && speWide.text.includes(facts.xspe));
  assert.ok(speWide.text.includes("opened for the whole SPE, not for one customer")); // it says why there is no customer
});

test("the launch URLs the demo printed work too (signed with the server's own code)", async () => {
  const printed = demo.output().split("\n").find((l) => l.trim().startsWith("as the customer:"));
  const url = printed.trim().replace("as the customer:", "").trim();
  const { response, hops, text } = await new Browser().follow(url);
  assert.equal(response.status, 200);
  assert.equal(hops.at(-1), `${new URL(appUrl).host}/sites`);
  assert.ok(text.includes("Demo Customer"));
});
