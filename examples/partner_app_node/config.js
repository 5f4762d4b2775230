/** The example app's settings, from environment variables (the same as examples/partner_app). */

export const DEFAULT_OPENPLATFORM_URL = "http://127.0.0.1:8000";
export const DEFAULT_PORT = 9000;

/**
 * @param {NodeJS.ProcessEnv} env
 * @returns {{ appId: string, appSecret: string, openplatformUrl: string, port: number, baseUrl: string, callbackUrl: string }}
 */
export function configFromEnv(env = process.env) {
  const missing = ["APP_ID", "APP_SECRET"].filter((name) => !env[name]);
  if (missing.length) {
    throw new Error(`set ${missing.join(" and ")} (printed by \`openplatform demo\` or \`openplatform app create\`)`);
  }
  const port = Number(env.PORT ?? DEFAULT_PORT);
  // The public URL of this app: its host and port must be those of the registered host_url,
  // because the platform only redirects there (SPEC §2.1).
  const baseUrl = (env.APP_URL || `http://localhost:${port}`).replace(/\/+$/, "");
  return {
    appId: String(env.APP_ID),
    appSecret: String(env.APP_SECRET),
    openplatformUrl: env.OPENPLATFORM_URL || DEFAULT_OPENPLATFORM_URL,
    port,
    baseUrl,
    callbackUrl: `${baseUrl}/callback`,
  };
}
