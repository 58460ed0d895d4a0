// Sign-up, e-mail verification and password reset (issue 20) against a fake fetch: what each
// request looks like, which answers resolve, which errors surface, and that none of them
// signs in, emits an event or disturbs a signed-in tab.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { AuthError, createAuthClient, type AuthClient, type AuthClientOptions, type AuthEvent } from "../src/index.js";

const API = "https://api.test";

type Call = { url: string; method: string; credentials: RequestCredentials | undefined; contentType: string | null; body: unknown };

/** A fake `fetch` that records each request as sent (its init included) and answers with `handler`. */
function fakeFetch(handler: (call: Call) => Response | Promise<Response>) {
  const calls: Call[] = [];
  const fetch = async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    const call: Call = {
      url: String(input),
      method: init.method ?? "GET",
      credentials: init.credentials,
      contentType: headers.get("content-type"),
      body: typeof init.body === "string" ? JSON.parse(init.body) : init.body,
    };
    calls.push(call);
    return handler(call);
  };
  return { calls, fetch: fetch as typeof globalThis.fetch };
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const accepted = () => json(202, { status: "accepted" });
const noContent = () => new Response(null, { status: 204 });
const refusal = (status: number, code: string) => json(status, { error: code, message: `message for ${code}` });

function jwt(sub = "user-1"): string {
  const iat = Math.floor(Date.now() / 1000);
  return `e30.${Buffer.from(JSON.stringify({ sub, sid: "session-1", iat, exp: iat + 900 })).toString("base64url")}.sig`;
}

const clients: AuthClient[] = [];
function client(fetch: typeof globalThis.fetch, options: Partial<AuthClientOptions> = {}) {
  const auth = createAuthClient({ baseUrl: API, fetch, channel: null, ...options });
  const events: AuthEvent[] = [];
  auth.onAuthStateChange((event) => events.push(event));
  clients.push(auth);
  return { auth, events };
}
afterEach(() => clients.splice(0).forEach((auth) => auth.close()));

/** Each new function: how to call it, the path it defaults to, the body it must send, how it succeeds, and the codes the contract gives it. */
const operations: {
  name: string;
  call: (auth: AuthClient) => Promise<void>;
  pathKey: "signUp" | "verifyEmail" | "resendVerification" | "requestPasswordReset" | "resetPassword";
  path: string;
  body: unknown;
  success: () => Response;
  errors: [number, string][];
}[] = [
  {
    name: "signUp",
    call: (auth) => auth.signUp("new@example.com", "a long enough password"),
    pathKey: "signUp",
    path: "/auth/signup",
    body: { username: "new@example.com", password: "a long enough password" },
    success: accepted,
    errors: [
      [400, "weak_password"],
      [400, "invalid_request"],
      [403, "signup_closed"],
      [403, "forbidden_origin"],
      [429, "too_many_attempts"],
    ],
  },
  {
    name: "verifyEmail",
    call: (auth) => auth.verifyEmail("verify-token-1", "pw-1"),
    pathKey: "verifyEmail",
    path: "/auth/verify-email",
    body: { token: "verify-token-1", password: "pw-1" },
    success: noContent,
    errors: [
      [400, "invalid_token"],
      [400, "invalid_request"],
      [403, "forbidden_origin"],
    ],
  },
  {
    name: "resendVerification",
    call: (auth) => auth.resendVerification("new@example.com"),
    pathKey: "resendVerification",
    path: "/auth/verify-email/resend",
    body: { username: "new@example.com" },
    success: accepted,
    errors: [
      [400, "invalid_request"],
      [403, "forbidden_origin"],
    ],
  },
  {
    name: "requestPasswordReset",
    call: (auth) => auth.requestPasswordReset("new@example.com"),
    pathKey: "requestPasswordReset",
    path: "/auth/password/forgot",
    body: { username: "new@example.com" },
    success: accepted,
    errors: [
      [400, "invalid_request"],
      [403, "forbidden_origin"],
    ],
  },
  {
    name: "resetPassword",
    call: (auth) => auth.resetPassword("reset-token-1", "a new long password"),
    pathKey: "resetPassword",
    path: "/auth/password/reset",
    body: { token: "reset-token-1", new_password: "a new long password" },
    success: noContent,
    errors: [
      [400, "weak_password"],
      [400, "invalid_token"],
      [403, "forbidden_origin"],
    ],
  },
];

for (const op of operations) {
  test(`${op.name}: one POST of exactly its JSON body to ${op.path}, with the cookies; resolves on its ${op.success().status}, emits nothing, signs nobody in`, async () => {
    const server = fakeFetch(() => op.success());
    const { auth, events } = client(server.fetch);
    assert.equal(await op.call(auth), undefined);
    assert.deepEqual(server.calls, [{ url: `${API}${op.path}`, method: "POST", credentials: "include", contentType: "application/json", body: op.body }]);
    assert.deepEqual(events, []);
    assert.equal(auth.getClaims(), null);
  });

  test(`${op.name}: both 202 and 204 resolve`, async () => {
    for (const answer of [accepted, noContent]) {
      const { auth } = client(fakeFetch(answer).fetch);
      await op.call(auth);
    }
  });

  test(`${op.name}: its path is configurable like login's (cargo lambda watch's /lambda-url/register/...), and a stage in baseUrl is kept`, async () => {
    const server = fakeFetch(() => op.success());
    const path = `/lambda-url/register${op.path}`;
    const { auth } = client(server.fetch, { baseUrl: `${API}/stage/`, paths: { [op.pathKey]: path } });
    await op.call(auth);
    assert.deepEqual(
      server.calls.map((c) => c.url),
      [`${API}/stage${path}`],
    );
  });

  test(`${op.name}: each of the server's refusals is an AuthError with its code, status and message`, async () => {
    for (const [status, code] of op.errors) {
      const server = fakeFetch(() => refusal(status, code));
      const { auth, events } = client(server.fetch);
      const error = await op.call(auth).then(
        () => assert.fail(`${code} resolved`),
        (error: unknown) => error,
      );
      assert.ok(error instanceof AuthError, code);
      assert.deepEqual([error.code, error.status, error.message], [code, status, `message for ${code}`]);
      assert.equal(server.calls.length, 1, `${code}: sent once, not retried`);
      assert.deepEqual(events, []);
    }
  });

  test(`${op.name}: an answer that is neither 202 nor 204 nor the error table's JSON is an AuthError http_<status>`, async () => {
    for (const answer of [() => new Response("Bad gateway", { status: 502 }), () => json(200, { status: "accepted" }), () => json(404, { message: "Not Found" })]) {
      const expected = answer().status;
      const { auth } = client(fakeFetch(answer).fetch);
      await assert.rejects(op.call(auth), (error: unknown) => error instanceof AuthError && error.code === `http_${expected}` && error.status === expected);
    }
  });

  test(`${op.name}: no readable answer (offline, refused by CORS) is network_error with the cause`, async () => {
    const cause = new TypeError("Failed to fetch");
    const server = fakeFetch(() => {
      throw cause;
    });
    const { auth, events } = client(server.fetch);
    await assert.rejects(op.call(auth), (error: unknown) => {
      assert.ok(error instanceof AuthError);
      assert.deepEqual([error.code, error.status, error.cause], ["network_error", undefined, cause]);
      assert.match(error.message, new RegExp(`^The ${op.name} request got no readable answer`));
      return true;
    });
    assert.equal(server.calls.length, 1);
    assert.deepEqual(events, []);
  });
}

test("login: 403 email_not_verified (a correct password, the address not verified yet) is an AuthError with that code; nothing changes, and a later login works", async () => {
  let verified = false;
  const server = fakeFetch(({ url }) => {
    if (url.endsWith("/auth/login")) {
      return verified ? json(200, { access_token: jwt(), token_type: "Bearer", expires_in: 900 }) : refusal(403, "email_not_verified");
    }
    if (url.endsWith("/auth/verify-email")) return (verified = true), noContent();
    throw new Error(`unexpected ${url}`);
  });
  const { auth, events } = client(server.fetch);
  await assert.rejects(
    auth.login("new@example.com", "pw"),
    (error: unknown) => error instanceof AuthError && error.code === "email_not_verified" && error.status === 403,
  );
  assert.equal(events.length, 0);
  assert.equal(auth.getClaims(), null);

  await auth.verifyEmail("verify-token-1", "pw");
  assert.equal(events.length, 0, "verifying signs nobody in");
  const signedIn = await auth.login("new@example.com", "pw");
  assert.equal(signedIn?.mfaRequired ? "a challenge" : signedIn?.sub, "user-1");
  assert.deepEqual(
    events.map((e) => e.type),
    ["SIGNED_IN"],
  );
  assert.deepEqual(
    server.calls.map((c) => new URL(c.url).pathname),
    ["/auth/login", "/auth/verify-email", "/auth/login"],
  );
});

test("a signed-in tab stays signed in, with the same token and no event or refresh, through every new call, refused or not", async () => {
  let refuse = false;
  const server = fakeFetch(({ url }) => {
    if (url.endsWith("/auth/login")) return json(200, { access_token: jwt(), token_type: "Bearer", expires_in: 900 });
    if (refuse) return refusal(400, "invalid_token");
    return url.endsWith("/auth/signup") || url.endsWith("/resend") || url.endsWith("/forgot") ? accepted() : noContent();
  });
  const { auth, events } = client(server.fetch);
  await auth.login("alice@example.com", "pw");
  const token = await auth.getAccessToken();
  for (const op of operations) await op.call(auth);
  refuse = true;
  for (const op of operations) await assert.rejects(op.call(auth), AuthError);
  assert.equal(await auth.getAccessToken(), token);
  assert.deepEqual(
    events.map((e) => e.type),
    ["SIGNED_IN"],
  );
  assert.equal(server.calls.filter((c) => /refresh|logout/.test(c.url)).length, 0, "no refresh, no logout");
});
