/** `node server.js`: serve the partner app on 127.0.0.1:$PORT (see README.md). */

import { createServer } from "node:http";

import { createApp } from "./app.js";
import { configFromEnv } from "./config.js";

let config;
try {
  config = configFromEnv();
} catch (error) {
  console.error(error.message);
  process.exit(2);
}
const { handle } = createApp(config);
const server = createServer(handle);
server.listen(config.port, "127.0.0.1", () => {
  console.log(`partner app on ${config.baseUrl}/ (openplatform at ${config.openplatformUrl})`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
