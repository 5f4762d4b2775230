/**
 * `npm pack` produces the package an app installs: ESM with its type declarations, no tests.
 * The tarball is installed into an empty project (no network: the SDK has no runtime dependency),
 * a strict TypeScript consumer is type-checked against the shipped declarations, compiled and run.
 */

import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

import { run } from "./support.js";

const PACKAGE = resolve(fileURLToPath(new URL(".", import.meta.url)), "../..");
const work = await mkdtemp(join(tmpdir(), "openplatform-ts-pack-"));

after(async () => {
  await rm(work, { recursive: true, force: true });
});

const CONSUMER = `
import { AppClient, OpenPlatformError, Token, signing, type Customer, type Page } from "@openplatform/client";
import { signLaunch } from "@openplatform/client/signing";

const client = new AppClient({ appId: "app", secret: "s3cret", baseUrl: "http://127.0.0.1:9" });
const connect: { url: string; state: string } = client.connectUrl({
  xspe: "spe_1", customerId: "cus_1", redirectUri: "http://localhost:9000/callback",
});
const launch = client.verifyLaunch(signLaunch("s3cret", "app", "spe_1", "cus_1"));
const customerId: string | null = launch.customerId;
const pending: Promise<Page<Customer>> = client.customers.list({ pageSize: 5 });
const code: number = await pending.then(() => 0, (error: unknown) => (error instanceof OpenPlatformError ? error.code : -1));
const token = new Token({ accessToken: "a", expiresIn: 60, expiresAt: 0 });
// @ts-expect-error the constructor takes one options object (SPEC §11)
void (() => new AppClient("app", "s3cret", "http://x"));
// @ts-expect-error exchangeCode needs the callback's state
void (() => client.exchangeCode("code"));
console.log(JSON.stringify({
  connect: connect.url.startsWith("http://127.0.0.1:9/oauth/connect?"), customerId, code,
  same: signing.signLaunch === signLaunch, due: token.due(0, 60),
}));
`;

test("npm pack ships dist with type declarations, and a strict TypeScript app can use it", async () => {
  const packed = JSON.parse(
    await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], { cwd: PACKAGE, env: process.env }),
  ) as { filename: string; files: { path: string }[] }[];
  const [tarball] = packed;
  assert.ok(tarball);
  const files = tarball.files.map((f) => f.path);
  for (const expected of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/client.d.ts", "dist/signing.js", "dist/signing.d.ts"]) {
    assert.ok(files.includes(expected), `${expected} is not in the package: ${files.join(", ")}`);
  }
  assert.deepEqual(files.filter((f) => /^(test|build|node_modules)\//.test(f) || f.endsWith(".test.js")), []);

  const app = join(work, "app");
  await mkdir(app);
  await writeFile(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", join(work, tarball.filename)], {
    cwd: app, env: process.env,
  });
  await writeFile(join(app, "consumer.ts"), CONSUMER);
  const tsc = join(PACKAGE, "node_modules", "typescript", "bin", "tsc");
  await run(process.execPath, [
    tsc, "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
    "--types", "node", "--typeRoots", join(PACKAGE, "node_modules", "@types"), "--outDir", join(app, "out"),
    join(app, "consumer.ts"),
  ], { cwd: app, env: process.env });
  const output = JSON.parse(await run(process.execPath, [join(app, "out", "consumer.js")], { cwd: app, env: process.env }));
  assert.deepEqual(output, { connect: true, customerId: "cus_1", code: 50301, same: true, due: true });
});
