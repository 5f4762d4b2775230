/**
 * A real `openplatform serve` for the tests, seeded with the server's own CLI (SPEC §5), and a
 * small browser (cookies, forms) to drive the SPE admin portal.
 *
 * The server binary: `$OPENPLATFORM_BIN`, else the repository's `.venv/bin/openplatform` (the
 * README's install), else `openplatform` on the PATH.
 */

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file runs from clients/typescript/build/test/). */
export const REPO = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../..");
export const SCOPES = ["customer:read", "customer:write", "site:read", "site:write"] as const;
export const USER_SCOPE = "install_login site:read site:write";
export const PASSWORD = "correct horse battery staple";

export function openplatformBin(): string {
  if (process.env.OPENPLATFORM_BIN) return process.env.OPENPLATFORM_BIN;
  const venv = join(REPO, ".venv", "bin", "openplatform");
  return existsSync(venv) ? venv : "openplatform";
}

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export interface Server {
  baseUrl: string;
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Run one CLI command on the server's database; its JSON output. */
  cli(args: string[], stdin?: string): Promise<Record<string, unknown>>;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Environment of the server under test: short-lived tokens, a short refresh leeway, quick webhooks. */
export function serverEnv(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    OPENPLATFORM_DATABASE_URL: `sqlite:///${join(dir, "openplatform.db")}`,
    OPENPLATFORM_SECRET_KEY: "typescript-sdk-tests-not-for-production-0123456789",
    OPENPLATFORM_RATE_LIMITS: "off",
    OPENPLATFORM_ACCESS_TOKEN_TTL: "60",
    OPENPLATFORM_REFRESH_LEEWAY: "0.5",
    OPENPLATFORM_WEBHOOK_POLL_SECONDS: "0.2",
    OPENPLATFORM_INVALIDATION_POLL_SECONDS: "0.1",
    OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS: "allow", // the tests' webhook receiver is on localhost
    ...extra,
  };
}

export function run(
  command: string, args: string[], options: { env: NodeJS.ProcessEnv; cwd: string; stdin?: string },
): Promise<string> {
  return new Promise((done, fail) => {
    const child = execFile(command, args, { env: options.env, cwd: options.cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`${command} ${args.join(" ")} failed: ${stderr || error.message}`));
      else done(stdout);
    });
    child.stdin?.end(options.stdin ?? "");
  });
}

async function waitFor(url: string, child: ChildProcess, logOf: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited: ${await logOf()}`);
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1000) })).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`the server did not answer within 30 s: ${await logOf()}`);
}

/** `openplatform serve` (it migrates first) on a free loopback port, in its own temp folder; no data. */
export async function startServer(extra: NodeJS.ProcessEnv = {}): Promise<Server> {
  const dir = await mkdtemp(join(tmpdir(), "openplatform-ts-"));
  const env = serverEnv(dir, extra);
  const bin = openplatformBin();
  const cli = async (args: string[], stdin?: string): Promise<Record<string, unknown>> => {
    const out = await run(bin, args, { env, cwd: dir, ...(stdin === undefined ? {} : { stdin }) });
    return JSON.parse(out) as Record<string, unknown>;
  };
  const port = await freePort();
  const logFile = await open(join(dir, "server.log"), "w");
  const child = spawn(bin, ["serve", "--port", String(port)], { env, cwd: dir, stdio: ["ignore", logFile.fd, logFile.fd] });
  const log = (): Promise<string> => readFile(join(dir, "server.log"), "utf8");
  const baseUrl = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    await logFile.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(`${baseUrl}/healthz`, child, log);
  } catch (error) {
    await stop();
    throw error;
  }
  return { baseUrl, dir, env, cli, log, stop };
}

export interface Partner {
  appId: string;
  secret: string;
  xspe: string;
  customerIds: string[];
  hostUrl: string;
  redirectUri: string;
}

/** A partner app registered with every scope and installed for a whole SPE of `customers` customers. */
export async function seedPartner(
  server: Server, options: { hostUrl?: string; webhookUrl?: string; customers?: number } = {},
): Promise<Partner> {
  const hostUrl = options.hostUrl ?? "http://localhost:9000/";
  const scopes = SCOPES.flatMap((scope) => ["--scope", scope]);
  const webhook = options.webhookUrl ? ["--webhook-url", options.webhookUrl] : [];
  const [spe, app] = await Promise.all([
    server.cli(["spe", "create", "--name", "Partner SPE"]),
    server.cli(["app", "create", "--name", "Partner", "--host-url", hostUrl, ...scopes, ...webhook]),
  ]);
  const xspe = String(spe.xspe);
  const customers = await Promise.all(
    Array.from({ length: options.customers ?? 3 }, (_, n) =>
      server.cli(["customer", "create", "--xspe", xspe, "--name", `Customer ${n + 1}`])),
  );
  await server.cli(["install", "--app-id", String(app.app_id), "--xspe", xspe]);
  return {
    appId: String(app.app_id), secret: String(app.secret), xspe,
    customerIds: customers.map((c) => String(c.customer_id)), hostUrl, redirectUri: `${hostUrl}callback`,
  };
}

// ------------------------------------------------------------------ a small browser

/** Cookies by name, kept across requests like a browser would (one origin is enough here). */
export class Browser {
  private readonly cookies = new Map<string, string>();

  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const body = init.form ? new URLSearchParams(init.form) : undefined;
    const response = await fetch(url, { method: init.method ?? (body ? "POST" : "GET"), headers, body, redirect: "manual" });
    for (const line of setCookies(response.headers)) {
      const [pair = ""] = line.split(";");
      const at = pair.indexOf("=");
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      if (value && !/max-age=0/i.test(line)) this.cookies.set(name, value);
      else this.cookies.delete(name);
    }
    return response;
  }

  /** GET, following redirects (up to 10), with the hops seen. */
  async follow(url: string): Promise<{ response: Response; hops: URL[] }> {
    const hops: URL[] = [];
    let current = new URL(url);
    for (let n = 0; n < 10; n += 1) {
      hops.push(current);
      const response = await this.request(current.href);
      const location = response.headers.get("location");
      if (response.status < 300 || response.status >= 400 || !location) return { response, hops };
      await response.arrayBuffer();
      current = new URL(location, current);
    }
    throw new Error(`too many redirects from ${url}`);
  }
}

function setCookies(headers: Headers): string[] {
  const all = (headers as Headers & { getSetCookie?: () => string[] }).getSetCookie?.();
  if (all) return all;
  const joined = headers.get("set-cookie");
  return joined ? joined.split(/,(?=\s*[^;,=\s]+=)/) : [];
}

export function csrfIn(html: string): string {
  const found = /name="csrf_token" value="([^"]+)"/.exec(html);
  if (!found?.[1]) throw new Error(`no CSRF token in the page: ${html.slice(0, 500)}`);
  return found[1];
}

/** Sign in to the management screens at `/login` (SPEC §4). */
export async function signIn(baseUrl: string, email: string, password: string): Promise<Browser> {
  const browser = new Browser();
  const form = await browser.request(`${baseUrl}/login`);
  const token = csrfIn(await form.text());
  const answer = await browser.request(`${baseUrl}/login`, { form: { csrf_token: token, email, password } });
  if (answer.status !== 303) throw new Error(`sign-in refused (${answer.status}): ${await answer.text()}`);
  return browser;
}

/**
 * "Open app" in the SPE admin portal, as a signed-in SPE admin: the portal answers 303 to the
 * app's host_url with the signed launch. Returns that URL (not followed).
 */
export async function openAppFromPortal(
  browser: Browser, baseUrl: string, appId: string, customerId: string | null,
): Promise<URL> {
  const portal = await browser.request(`${baseUrl}/portal`);
  const token = csrfIn(await portal.text());
  const answer = await browser.request(`${baseUrl}/portal/launch`, {
    form: { csrf_token: token, app_id: appId, customer_id: customerId ?? "" },
  });
  const location = answer.headers.get("location");
  if (answer.status !== 303 || !location) throw new Error(`Open app refused (${answer.status}): ${await answer.text()}`);
  return new URL(location);
}

// ------------------------------------------------------------------ the server's own numbers

const METRIC = /^openplatform_requests_total\{([^}]*)\} ([0-9.e+]+)$/gm;

/**
 * How many requests the server answered on `endpoint` (any code), from its /metrics. When /metrics
 * wants an admin key (SPEC §9), one is made with the CLI (`openplatform admin-key create`).
 */
export class Metrics {
  private key: string | null = null;

  constructor(private readonly server: Server) {}

  async requests(endpoint: string): Promise<number> {
    let answer = await this.fetch();
    if ((answer.status === 401 || answer.status === 403) && this.key === null) {
      const created = await this.server.cli(["admin-key", "create", "--name", "typescript sdk tests"]);
      this.key = String(created.key);
      answer = await this.fetch();
    }
    if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}`);
    let total = 0;
    for (const [, labels = "", value = "0"] of (await answer.text()).matchAll(METRIC)) {
      if (labels.includes(`endpoint="${endpoint}"`)) total += Math.trunc(Number(value));
    }
    return total;
  }

  private fetch(): Promise<Response> {
    const headers: Record<string, string> = this.key ? { authorization: `Bearer ${this.key}` } : {};
    return fetch(`${this.server.baseUrl}/metrics`, { headers });
  }
}

/** What the server says about a token, straight at RFC 7009 (not through the SDK under test). */
export async function revokeAtServer(baseUrl: string, partner: Partner, token: string): Promise<void> {
  const answer = await fetch(`${baseUrl}/oauth/revoke`, {
    method: "POST", body: new URLSearchParams({ app_id: partner.appId, secret: partner.secret, token }),
  });
  const body = (await answer.json()) as { code: number };
  if (body.code !== 0) throw new Error(`revoke failed: ${JSON.stringify(body)}`);
}

/** Follow /oauth/connect like a browser (one real HTTP hop) and read code and state from the redirect. */
export async function codeFrom(connectUrl: string): Promise<{ code: string; state: string }> {
  const answer = await fetch(connectUrl, { redirect: "manual" });
  const location = answer.headers.get("location");
  if (answer.status !== 302 || !location) throw new Error(`connect answered ${answer.status}: ${await answer.text()}`);
  const query = new URL(location).searchParams;
  const code = query.get("code");
  if (!code) throw new Error(`no code in ${location}`);
  return { code, state: query.get("state") ?? "" };
}
