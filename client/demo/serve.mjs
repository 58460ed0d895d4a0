// The demo's static server: index.html (also at /verify-email and /reset-password, the
// e-mail links' landing pages), the compiled scripts under /dist/ (the page loads
// dist/demo/page.js, scripts/demo.mjs's bundle), and /config.json (where the API is).
// Loopback only, GET only, nothing outside client/.
// Usage: node demo/serve.mjs [port ...]   (default 5173; one process can serve several ports)
// DEMO_API_URL (default http://localhost:9000) is the API's root; DEMO_OAUTH_PROVIDERS lists
// the providers the federation function offers as `id=Name,...` (a "Sign in with Name" link
// each); DEMO_API_LAYOUT=gateway switches from `cargo lambda watch`'s /lambda-url/<function>/
// paths to API Gateway's /auth/*.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const gateway = process.env.DEMO_API_LAYOUT === "gateway";
const config = JSON.stringify({
  baseUrl: process.env.DEMO_API_URL ?? "http://localhost:9000",
  // Behind API Gateway the client's own default paths are right; cargo lambda watch gives
  // each function a base of its own.
  paths: gateway
    ? {}
    : {
        login: "/lambda-url/login/",
        // The login function routes its MFA step by the path's suffix /login/mfa.
        loginMfa: "/lambda-url/login/auth/login/mfa",
        refresh: "/lambda-url/refresh/",
        logout: "/lambda-url/logout/",
        // One function, suffix-matched paths: under its own base here.
        signUp: "/lambda-url/register/auth/signup",
        verifyEmail: "/lambda-url/register/auth/verify-email",
        resendVerification: "/lambda-url/register/auth/verify-email/resend",
        requestPasswordReset: "/lambda-url/register/auth/password/forgot",
        resetPassword: "/lambda-url/register/auth/password/reset",
        // The account function's MFA routes, suffix-matched like /auth/sessions.
        mfa: "/lambda-url/account/auth/mfa",
        // Passkeys: registered, listed and removed on the account function, signed in with on
        // the login function (suffix /passkeys/login/start and /finish).
        passkeys: "/lambda-url/account/auth/passkeys",
        passkeyLogin: "/lambda-url/login/auth/passkeys/login",
      },
  sessionsPath: gateway ? "/auth/sessions" : "/lambda-url/account/auth/sessions",
  username: process.env.DEMO_USERNAME ?? "demo@example.com",
  // DEMO_OAUTH_PROVIDERS (e.g. local=Local IdP,github=GitHub): the providers offered.
  oauth: (process.env.DEMO_OAUTH_PROVIDERS ?? "")
    .split(",")
    .filter(Boolean)
    .map((entry) => {
      const [id, name] = entry.split("=");
      return { id, name: name ?? id, start: `${gateway ? "" : "/lambda-url/federation"}/auth/oauth/${id}/start` };
    }),
});
/** The page's own routes: the e-mail links land on the last two (their token is in the fragment, never sent here). */
const pages = new Set(["/", "/verify-email", "/reset-password"]);
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

async function answer(request, response) {
  const path = new URL(request.url, "http://localhost").pathname;
  if (request.method !== "GET") return send(response, 405, "text/plain", "GET only");
  if (path === "/config.json") return send(response, 200, "application/json", config);
  const file = pages.has(path) ? "demo/index.html" : normalize(path.slice(1));
  if (!(file === "demo/index.html" || file.startsWith("dist/")) || !types[extname(file)]) return send(response, 404, "text/plain", "not found");
  try {
    send(response, 200, types[extname(file)], await readFile(join(root, file)));
  } catch {
    send(response, 404, "text/plain", "not found (run npm run build in client/)");
  }
}

function send(response, status, type, body) {
  response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  response.end(body);
}

const ports = process.argv.length > 2 ? process.argv.slice(2) : ["5173"];
for (const port of ports) {
  createServer((request, response) => answer(request, response)).listen(Number(port), "127.0.0.1", () => {
    console.log(`demo on http://localhost:${port}/ (API ${JSON.parse(config).baseUrl})`);
  });
}
