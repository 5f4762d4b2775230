/**
 * `node launch.js --xspe X [--customer-id C]`: print a fresh signed launch URL.
 *
 * The SPE admin portal's "Open app" does this for real; signing needs only the app secret, so
 * during development the app can sign its own launches. The URL is valid for five minutes.
 */

import { parseArgs } from "node:util";

import { signing } from "@openplatform/client";

import { configFromEnv } from "./config.js";

const { values } = parseArgs({ options: { xspe: { type: "string" }, "customer-id": { type: "string" } } });
if (!values.xspe) {
  console.error("usage: node launch.js --xspe XSPE [--customer-id CUSTOMER_ID]");
  process.exit(2);
}
const config = configFromEnv();
const params = signing.signLaunch(config.appSecret, config.appId, values.xspe, values["customer-id"] ?? null);
console.log(`${config.baseUrl}/?${new URLSearchParams(params)}`);
