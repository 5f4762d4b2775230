/**
 * The partner app: entrance (signed launch) → connect → callback → pages using the tokens.
 *
 * GET  /          the entrance (the app's host_url): verify the signed launch, then a customer
 *                 launch goes to /oauth/connect, an SPE-wide launch to /spe
 * GET  /callback  check the state cookie, exchange the code (the SDK keeps the tokens)
 * GET  /sites     the customer's sites, with the customer's user token; POST adds one
 * GET  /spe       the SPE's customers, with the app token
 * POST /webhook   install/uninstall notifications, verified; uninstall forgets the tokens
 */

import { randomBytes, timingSafeEqual } from "node:crypto";

import {
  AppClient,
  InvalidSignature,
  OpenPlatformError,
  ReauthorizationRequired,
  ValidationError,
  WEBHOOK_ACK,
} from "@openplatform/client";

import { CookieJar, SESSION_COOKIE, SESSION_MAX_AGE, STATE_COOKIE, STATE_MAX_AGE } from "./cookies.js";
import { messagePage, sitesPage, spePage } from "./pages.js";

/** The user token's scopes: its own record (install_login) and its sites. */
export const USER_SCOPE = "install_login site:read site:write";
const MAX_BODY = 64 * 1024;

/** @typedef {import("node:http").IncomingMessage} Request */
/** @typedef {import("node:http").ServerResponse} Response */

/** @param {Response} res @param {number} status @param {string} html @param {string[]} cookies */
function html(res, status, html, cookies = []) {
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8", "referrer-policy": "no-referrer", "set-cookie": cookies,
  });
  res.end(html);
}

/** @param {Response} res @param {number} status @param {string} location @param {string[]} cookies */
function redirect(res, status, location, cookies = []) {
  res.writeHead(status, { location, "set-cookie": cookies });
  res.end();
}

/** @param {Request} req @returns {Promise<Buffer>} */
function readBody(req) {
  return new Promise((done, fail) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        fail(new Error("body too large"));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => done(Buffer.concat(chunks)));
    req.on("error", fail);
  });
}

/** @param {string} a @param {string} b */
function same(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** @param {URL} url */
function pageNumber(url) {
  const raw = url.searchParams.get("page") ?? "1";
  return /^\d{1,5}$/.test(raw) && Number(raw) > 0 ? Number(raw) : 1;
}

/**
 * @param {ReturnType<typeof import("./config.js").configFromEnv>} config
 */
export function createApp(config) {
  const client = new AppClient({ appId: config.appId, secret: config.appSecret, baseUrl: config.openplatformUrl });
  const jar = new CookieJar(config.appSecret, config.baseUrl.startsWith("https://"));

  /** Send the browser to /oauth/connect; the state waits in a signed cookie for the callback. */
  function startConnect(res, xspe, customerId) {
    const { url, state } = client.connectUrl({ xspe, customerId, redirectUri: config.callbackUrl, scope: USER_SCOPE });
    redirect(res, 302, url, [jar.write(STATE_COOKIE, { state, xspe, customer_id: customerId }, STATE_MAX_AGE)]);
  }

  function entrance(req, res, url) {
    if (!url.searchParams.has("signature")) {
      return html(res, 200, messagePage("Partner app", "Open this app from your SPE admin portal."));
    }
    let launch;
    try {
      launch = client.verifyLaunch(url.searchParams);
    } catch (error) {
      if (error instanceof InvalidSignature) return html(res, 403, messagePage("Launch refused", error.msg));
      throw error;
    }
    if (launch.customerId) return startConnect(res, launch.xspe, launch.customerId);
    const session = { xspe: launch.xspe, spe: true, csrf: randomBytes(16).toString("base64url") };
    return redirect(res, 302, "/spe", [jar.write(SESSION_COOKIE, session, SESSION_MAX_AGE)]);
  }

  async function callback(req, res, url) {
    const query = url.searchParams;
    if (query.has("error")) { // RFC 6749 §4.1.2.1: the platform refused, e.g. the app was uninstalled
      return html(res, 403, messagePage("Not connected", query.get("error_description") ?? query.get("error") ?? ""));
    }
    const pending = jar.read(req, STATE_COOKIE);
    if (pending === null) return html(res, 400, messagePage("Not connected", "The sign-in expired; open the app again."));
    let token;
    try {
      token = await client.exchangeCode(query.get("code") ?? "", {
        state: query.get("state"), expectedState: pending.state, customerId: pending.customer_id, xspe: pending.xspe,
        redirectUri: config.callbackUrl,
      });
    } catch (error) {
      // StateMismatch, InvalidGrantError (code used or expired)...
      if (error instanceof OpenPlatformError) return html(res, 400, messagePage("Not connected", error.msg));
      throw error;
    }
    const session = { customer_id: token.customerId, xspe: token.xspe, csrf: randomBytes(16).toString("base64url") };
    return redirect(res, 303, "/sites", [jar.write(SESSION_COOKIE, session, SESSION_MAX_AGE), jar.clear(STATE_COOKIE)]);
  }

  function sessionOf(req, spe = false) {
    const session = jar.read(req, SESSION_COOKIE);
    return session === null || Boolean(session.spe) !== spe ? null : session;
  }

  async function renderSites(res, url, session, error = null) {
    const me = client.asCustomer(session.customer_id);
    const [customer, sites] = await Promise.all([me.get(), me.sites.list({ page: pageNumber(url) })]);
    html(res, error ? 400 : 200, sitesPage(customer, sites, session.csrf, error));
  }

  async function addSite(req, res, url, session) {
    const form = new URLSearchParams((await readBody(req)).toString("utf8"));
    if (!same(form.get("csrf") ?? "", session.csrf)) {
      return html(res, 403, messagePage("Refused", "The form expired; reload the page."));
    }
    const name = (form.get("name") ?? "").trim();
    const domain = (form.get("domain") ?? "").trim();
    try {
      await client.asCustomer(session.customer_id).sites.create({ name, domain });
    } catch (error) {
      if (error instanceof ValidationError) return renderSites(res, url, session, `${error.field ?? "input"}: ${error.msg}`);
      throw error;
    }
    return redirect(res, 303, "/sites"); // post/redirect/get
  }

  async function sites(req, res, url) {
    const session = sessionOf(req);
    if (session === null) return html(res, 401, messagePage("Signed out", "Open this app from your SPE admin portal."));
    try {
      if (req.method === "POST") return await addSite(req, res, url, session);
      return await renderSites(res, url, session);
    } catch (error) {
      // The refresh was refused (uninstalled, revoked, theft detected): connect again.
      if (error instanceof ReauthorizationRequired) return startConnect(res, session.xspe, session.customer_id);
      throw error;
    }
  }

  async function spe(req, res, url) {
    const session = sessionOf(req, true);
    if (session === null) return html(res, 401, messagePage("Signed out", "Open this app from your SPE admin portal."));
    const customers = await client.customers.list({ xspe: session.xspe, page: pageNumber(url) });
    return html(res, 200, spePage(session.xspe, customers));
  }

  async function webhook(req, res) {
    let event;
    try {
      event = client.verifyWebhook(await readBody(req), req.headers); // the raw bytes, before any JSON parsing
    } catch (error) {
      if (!(error instanceof InvalidSignature)) throw error;
      res.writeHead(400, { "content-type": "application/json" });
      return res.end(JSON.stringify({ code: error.code, msg: error.msg }));
    }
    if (event.uninstalled && event.customerId) await client.forget(event.customerId);
    const whom = event.customerId ? `customer ${event.customerId} of SPE ${event.xspe}` : `the whole SPE ${event.xspe}`;
    console.log(`webhook: ${event.uninstalled ? "uninstall" : "install"} (type ${event.type}) for ${whom}, event ${event.eventId}`);
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(WEBHOOK_ACK));
  }

  const routes = {
    "GET /": entrance, "GET /callback": callback, "GET /sites": sites, "POST /sites": sites, "GET /spe": spe,
    "POST /webhook": webhook,
  };

  /** The request handler for `http.createServer`. */
  async function handle(req, res) {
    const url = new URL(req.url ?? "/", config.baseUrl);
    const route = routes[`${req.method} ${url.pathname}`];
    try {
      if (route === undefined) return html(res, 404, messagePage("Not found", url.pathname));
      await route(req, res, url);
    } catch (error) {
      console.error(error);
      if (!res.headersSent) html(res, 502, messagePage("Unavailable", "The platform could not be reached; try again."));
      else res.end();
    }
  }

  return { handle, client };
}
