// The client against a fake fetch and mocked timers: timing and races, without a server.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";
import { AuthError, createAuthClient, type AuthClient, type AuthClientOptions, type AuthEvent } from "../src/index.js";

const API = "https://api.test";
const SESSIONS = `${API}/auth/sessions`;

/** An unsigned JWT with the claims the client reads. */
function jwt(n: number, lifetimeSeconds = 100): string {
  const iat = Math.floor(Date.now() / 1000);
  const payload = { sub: "user-1", sid: "session-1", iat, exp: iat + lifetimeSeconds, n };
  return `e30.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const tokenAnswer = (n: number, lifetimeSeconds = 100) => json(200, { access_token: jwt(n, lifetimeSeconds), token_type: "Bearer", expires_in: lifetimeSeconds });

type Call = { path: string; method: string; bearer: string | null };
type Handler = (call: Call) => Response | Promise<Response>;

/** A fake `fetch`: records each request and answers with `handler`. */
function fakeFetch(handler: Handler) {
  const calls: Call[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const call = { path: new URL(request.url).pathname, method: request.method, bearer: request.headers.get("authorization") };
    calls.push(call);
    return handler(call);
  };
  return { calls, fetch: fetch as typeof globalThis.fetch, count: (path: string) => calls.filter((c) => c.path === path).length };
}

const clients: AuthClient[] = [];
function client(fetch: typeof globalThis.fetch, options: Partial<AuthClientOptions> = {}) {
  const auth = createAuthClient({ baseUrl: API, fetch, channel: null, ...options });
  const events: AuthEvent[] = [];
  auth.onAuthStateChange((event) => events.push(event));
  clients.push(auth);
  return { auth, events, types: () => events.map((e) => e.type) };
}

/** Lets pending promise callbacks run (setImmediate is not mocked). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};
/** Advances the mocked clock in small steps, settling promises between them. */
async function advance(ms: number, step = 50) {
  for (let done = 0; done < ms; done += step) {
    mock.timers.tick(Math.min(step, ms - done));
    await settle();
  }
}

beforeEach(() => mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_700_000_000_000 }));
afterEach(() => {
  clients.splice(0).forEach((auth) => auth.close());
  mock.timers.reset();
});

test("concurrent calls without a token share one refresh (single-flight)", async () => {
  let refreshes = 0;
  const server = fakeFetch(async ({ path }) => (path === "/auth/refresh" ? tokenAnswer(++refreshes) : json(200, { sessions: [] })));
  const { auth } = client(server.fetch);
  const answers = await Promise.all([auth.fetch(SESSIONS), auth.fetch(SESSIONS), auth.fetch(SESSIONS), auth.getAccessToken()]);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.deepEqual(answers.slice(0, 3).map((r) => (r as Response).status), [200, 200, 200]);
  const bearers = server.calls.filter((c) => c.path === "/auth/sessions").map((c) => c.bearer);
  assert.deepEqual(bearers, Array(3).fill(`Bearer ${answers[3]}`));
});

test("the token is refreshed a fifth of its lifetime before it expires, not earlier, and the page is told", async () => {
  let refreshes = 0;
  const server = fakeFetch(({ path }) => (path === "/auth/login" ? tokenAnswer(0) : tokenAnswer(++refreshes)));
  const { auth, types } = client(server.fetch);
  await auth.login("alice", "pw");
  await advance(79_900, 100);
  assert.equal(server.count("/auth/refresh"), 0, "not before 80 s of a 100 s token");
  await advance(200);
  assert.equal(server.count("/auth/refresh"), 1);
  assert.deepEqual(types(), ["SIGNED_IN", "TOKEN_REFRESHED"]);
  await advance(80_000, 200);
  assert.equal(server.count("/auth/refresh"), 2, "and again 80 s after that refresh");
});

test("a 401 from the API refreshes and sends the request once more with the new token", async () => {
  let refreshes = 0;
  let apiCalls = 0;
  const server = fakeFetch(({ path }) => {
    if (path === "/auth/login") return tokenAnswer(0);
    if (path === "/auth/refresh") return tokenAnswer(++refreshes);
    return ++apiCalls === 1 ? json(401, { error: "invalid_token" }) : json(200, { ok: true });
  });
  const { auth } = client(server.fetch);
  await auth.login("alice", "pw");
  const response = await auth.fetch(SESSIONS, { method: "POST", body: "replayable", headers: { "x-keep": "1" } });
  assert.equal(response.status, 200);
  const api = server.calls.filter((c) => c.path === "/auth/sessions");
  assert.equal(api.length, 2);
  assert.notEqual(api[0]!.bearer, api[1]!.bearer, "the retry carries the refreshed token");
  assert.equal(server.count("/auth/refresh"), 1);
});

test("a 401 right after a successful refresh is returned to the caller, not looped", async () => {
  const server = fakeFetch(({ path }) => (path === "/auth/sessions" ? json(401, { error: "invalid_token" }) : tokenAnswer(1)));
  const { auth } = client(server.fetch);
  const response = await auth.fetch(SESSIONS);
  assert.equal(response.status, 401);
  assert.equal(server.count("/auth/sessions"), 2, "the first try and one retry");
  assert.equal(server.count("/auth/refresh"), 2, "the first token, and one refresh after the 401");
});

test("a request whose body is a stream is never sent twice", async () => {
  const server = fakeFetch(({ path }) => (path === "/auth/sessions" ? json(401, { error: "invalid_token" }) : tokenAnswer(1)));
  const { auth } = client(server.fetch);
  const body = new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode("once")), c.close()) });
  const response = await auth.fetch(SESSIONS, { method: "POST", body, duplex: "half" } as RequestInit);
  assert.equal(response.status, 401);
  assert.equal(server.count("/auth/sessions"), 1);
});

test("network errors and 503s on refresh are retried with growing, bounded waits, reported, and the user stays signed in", async () => {
  let refreshes = 0;
  const server = fakeFetch(({ path }) => {
    if (path === "/auth/login") return tokenAnswer(0, 10);
    refreshes++;
    if (refreshes === 1) throw new TypeError("Failed to fetch");
    if (refreshes <= 3) return json(503, { error: "unavailable" });
    return tokenAnswer(refreshes, 10);
  });
  const { auth, events, types } = client(server.fetch, { retry: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300 } });
  await auth.login("alice", "pw");
  await advance(8_000 + 2_000, 20);
  const retries = events.filter((e) => e.type === "REFRESH_RETRYING");
  assert.deepEqual(
    retries.map((e) => [e.attempt, e.error.code]),
    [
      [1, "network_error"],
      [2, "unavailable"],
      [3, "unavailable"],
    ],
  );
  const bounds = [[50, 100], [100, 200], [150, 300]] as const;
  retries.forEach((e, i) => assert.ok(e.retryInMs >= bounds[i]![0] && e.retryInMs <= bounds[i]![1], `wait ${i + 1}: ${e.retryInMs} ms`));
  assert.deepEqual(types(), ["SIGNED_IN", "REFRESH_RETRYING", "REFRESH_RETRYING", "REFRESH_RETRYING", "TOKEN_REFRESHED"]);
  assert.equal(refreshes, 4);
});

test("a refresh that fails every try gives up after maxAttempts with `unavailable` and does not sign out", async () => {
  const server = fakeFetch(({ path }) => (path === "/auth/login" ? tokenAnswer(0, 10) : json(503, { error: "unavailable" })));
  const { auth, types } = client(server.fetch, { retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1000 } });
  await auth.login("alice", "pw");
  await advance(10_500);
  assert.equal(server.count("/auth/refresh"), 3, "the proactive refresh tried 3 times and stopped");
  // The token has expired: asking for one starts another bounded round of tries.
  const refused = assert.rejects(auth.getAccessToken(), (error) => error instanceof AuthError && error.code === "unavailable");
  await advance(2_000);
  await refused;
  assert.equal(server.count("/auth/refresh"), 6);
  assert.ok(!types().includes("SIGNED_OUT"));
  assert.notEqual(auth.getClaims(), null, "still signed in: the session may be valid");
});

for (const [code, reason] of [
  ["token_reused", "token_reused"],
  ["invalid_token", "session_ended"],
] as const) {
  test(`a 401 ${code} on refresh signs out with reason ${reason}, and later calls send nothing`, async () => {
    const server = fakeFetch(({ path }) => (path === "/auth/login" ? tokenAnswer(0, 10) : json(401, { error: code })));
    const { auth, events } = client(server.fetch);
    await auth.login("alice", "pw");
    await advance(8_100, 100);
    assert.deepEqual(events.at(-1), { type: "SIGNED_OUT", reason });
    const sent = server.calls.length;
    await assert.rejects(auth.fetch(SESSIONS), { code: "signed_out" });
    assert.equal(await auth.getAccessToken(), null);
    assert.equal(server.calls.length, sent, "nothing sent while signed out");
  });
}

test("logout signs out at once with reason logout, asks the server, and a refresh answer that comes back later is dropped", async () => {
  let answerRefresh: (response: Response) => void = () => {};
  const server = fakeFetch(({ path }) => {
    if (path === "/auth/login") return tokenAnswer(0, 10);
    if (path === "/auth/refresh") return new Promise<Response>((resolve) => (answerRefresh = resolve));
    return new Response(null, { status: 204 });
  });
  const { auth, types } = client(server.fetch);
  await auth.login("alice", "pw");
  await advance(8_100, 100);
  assert.equal(server.count("/auth/refresh"), 1, "a refresh is in flight");
  await auth.logout({ everywhere: true });
  answerRefresh(tokenAnswer(1, 10));
  await settle();
  assert.deepEqual(types(), ["SIGNED_IN", "SIGNED_OUT"]);
  assert.equal(auth.getClaims(), null, "the late refresh did not sign the tab back in");
  assert.deepEqual(server.calls.at(-1), { path: "/auth/logout", method: "POST", bearer: null });
});

test("login errors carry the server's code and Retry-After", async () => {
  const server = fakeFetch(() => new Response(JSON.stringify({ error: "too_many_attempts", message: "later" }), { status: 429, headers: { "retry-after": "30" } }));
  const { auth, types } = client(server.fetch);
  await assert.rejects(auth.login("alice", "pw"), { name: "AuthError", code: "too_many_attempts", status: 429, retryAfter: 30 });
  assert.deepEqual(types(), []);
});

test("another tab's sign-in hands this tab the token, and its sign-out signs this tab out, through BroadcastChannel", async () => {
  mock.timers.reset(); // BroadcastChannel delivers on the real event loop
  const channel = `test-${Math.random()}`;
  const server = fakeFetch(({ path }) => (path === "/auth/login" ? tokenAnswer(0) : new Response(null, { status: 204 })));
  const first = client(server.fetch, { channel });
  const second = client(server.fetch, { channel });
  await first.auth.login("alice", "pw");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(second.types(), ["SIGNED_IN"]);
  assert.equal(await second.auth.getAccessToken(), await first.auth.getAccessToken(), "the same token, no refresh");
  assert.equal(server.count("/auth/refresh"), 0);
  await first.auth.logout();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(second.events.at(-1), { type: "SIGNED_OUT", reason: "logout" });
  assert.equal(second.auth.getClaims(), null);
});
