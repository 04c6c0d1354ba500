// `npm start`: Parley on http://localhost:$PORT (default 8787) with a demo organisation.
// Local state (D1, Durable Objects) lives in .wrangler/state; the demo credentials in
// .wrangler/demo.json, because the API shows a key or token only once, when it is created.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  applyLocalMigrations,
  freePort,
  probePort,
  root,
  startWranglerDev,
  stopWranglerDev,
  waitForHealthy,
} from "./lib/wrangler.mjs";

const port = Number(process.env.PORT ?? 8787);
// wrangler dev listens on 127.0.0.1 only; the URLs printed for people say localhost.
const base = `http://127.0.0.1:${port}`;
const shown = `http://localhost:${port}`;
const demoFile = join(root, ".wrangler", "demo.json");
const demo = {
  organization_name: "Demo Co",
  name: "Demo Agent",
  email: "demo@parley.local",
  password: "parley-demo-password",
};

/**
 * @typedef {object} DemoCredentials
 * @property {string} organization_id
 * @property {string} public_key
 * @property {string} webchat_token
 */

/** @type {import("node:child_process").ChildProcess | undefined} */
let wrangler;
let stopping = false;

/** @param {number} code */
async function stop(code) {
  stopping = true;
  if (wrangler) await stopWranglerDev(wrangler);
  process.exit(code);
}

/**
 * @param {string} path
 * @param {{ body?: unknown, cookie?: string, csrf?: string }} [opts]
 */
async function call(path, { body, cookie, csrf } = {}) {
  /** @type {Record<string, string>} */
  const headers = { "content-type": "application/json" };
  if (cookie) headers.cookie = cookie;
  if (csrf) headers["x-csrftoken"] = csrf;
  const res = await fetch(new URL(path, base), {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  /** @type {any} */
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Reported through `text` below.
  }
  return { status: res.status, json, text, headers: res.headers };
}

/**
 * @param {Awaited<ReturnType<typeof call>>} res
 * @param {string} what
 */
function seedError(res, what) {
  return new Error(`${what} answered ${res.status}: ${res.text.slice(0, 300)}`);
}

/** Signs the demo agent up, or in when it exists already. */
async function session() {
  const signup = await call("/auth/signup", { body: demo });
  const res =
    signup.status === 409 ? await call("/auth/login", { body: { email: demo.email, password: demo.password } }) : signup;
  const what = signup.status === 409 ? "POST /auth/login" : "POST /auth/signup";
  if (res.status < 200 || res.status > 299) throw seedError(res, what);
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(";", 1)[0] ?? "")
    .find((c) => c.startsWith("session="));
  if (!cookie || !res.json?.csrf_token || !res.json?.organization?.id) {
    throw seedError(res, `${what} (expected a session cookie and {organization, csrf_token})`);
  }
  return { cookie, csrf: /** @type {string} */ (res.json.csrf_token), organization_id: String(res.json.organization.id) };
}

/** @returns {Promise<DemoCredentials>} */
async function seed() {
  const { cookie, csrf, organization_id } = await session();
  if (existsSync(demoFile)) {
    /** @type {DemoCredentials} */
    const saved = JSON.parse(readFileSync(demoFile, "utf8"));
    // A fresh signup after the state was wiped is a new organisation: the saved ones are dead.
    if (saved.organization_id === organization_id) return saved;
  }
  const key = await call("/api/company/api-keys", { cookie, csrf, body: { name: "Demo public key", kind: "public" } });
  if (key.status !== 201 || !key.json?.key) throw seedError(key, "POST /api/company/api-keys");
  const webchat = await call("/api/integrations/webchat", {
    cookie,
    csrf,
    body: { name: "Demo site", allowed_origins: [], title: "Chat with Demo Co" },
  });
  if (webchat.status !== 201 || !webchat.json?.token) throw seedError(webchat, "POST /api/integrations/webchat");

  /** @type {DemoCredentials} */
  const credentials = { organization_id, public_key: key.json.key, webchat_token: webchat.json.token };
  mkdirSync(dirname(demoFile), { recursive: true });
  writeFileSync(demoFile, `${JSON.stringify(credentials, null, 2)}\n`);
  return credentials;
}

async function main() {
  if ((await probePort(port)) === null) {
    throw new Error(`Port ${port} is in use (another \`npm start\`?). Stop it or run with PORT=<port>.`);
  }
  applyLocalMigrations();

  // The devtools port stays the usual 9229 unless another wrangler (say `npm test`) holds it.
  const inspectorPort = (await probePort(9229)) ?? (await freePort());
  wrangler = startWranglerDev({ port, inspectorPort, stdio: ["ignore", "inherit", "inherit"] });
  wrangler.on("exit", (code, signal) => {
    if (stopping) return;
    console.error(`\n✘ wrangler dev stopped (${code ?? signal}).`);
    process.exit(code ?? 1);
  });
  await waitForHealthy(base, wrangler, 60_000).catch((err) => {
    throw new Error(`Parley did not come up: ${err.message}. See wrangler's output above.`);
  });

  const credentials = await seed().catch((err) => {
    throw new Error(
      `Seeding the demo organisation through the API failed: ${err.message}\n` +
        "  (It needs POST /auth/signup, /auth/login, /api/company/api-keys and /api/integrations/webchat.)",
    );
  });

  console.log(`
────────────────────────────────────────────────────────────
  Parley is running.  Ctrl-C stops it.

  Console         ${shown}/console/
  Agent login     ${demo.email} / ${demo.password}
  Public API key  ${credentials.public_key}
  Webchat token   ${credentials.webchat_token}
  Demo page       ${shown}/demo/?key=${credentials.public_key}
────────────────────────────────────────────────────────────
`);
}

process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
main().catch((err) => {
  console.error(`\n✘ ${err.message}`);
  return stop(1);
});
