// The client against a fake fetch and mocked timers: timing and races, without a server.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";
import { AuthError, createAuthClient, type AuthClient, type AuthClientOptions, type AuthEvent } from "../src/index.js";

const API = "https://api.test";
const SESSIONS = `${API}/auth/sessions`;

/** An unsigned JWT with the claims the client reads. */
function jwt(n: number, lifetimeSeconds = 100, sub = "user-1"): string {
  const iat = Math.floor(Date.now() / 1000);
  const payload = { sub, sid: "session-1", iat, exp: iat + lifetimeSeconds, n };
  return `e30.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;
}

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const tokenAnswer = (n: number, lifetimeSeconds = 100, sub?: string) =>
  json(200, { access_token: jwt(n, lifetimeSeconds, sub), token_type: "Bearer", expires_in: lifetimeSeconds });
/** What an HTTP API answers when its Lambda authorizer denies. */
const gatewayDeny = () => json(403, { message: "Forbidden" });

type Call = { path: string; method: string; bearer: string | null; body: string };
type Handler = (call: Call) => Response | Promise<Response>;

/** A fake `fetch`: records each request and answers with `handler`. */
function fakeFetch(handler: Handler) {
  const calls: Call[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const call = { path: new URL(request.url).pathname, method: request.method, bearer: request.headers.get("authorization"), body: await request.text() };
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

/** A `localStorage` shared by the test's clients, as a browser's tabs share one; removed after the test. */
function fakeStorage() {
  const items = new Map<string, string>();
  const storage = {
    getItem: (key: string) => items.get(key) ?? null,
    setItem: (key: string, value: string) => void items.set(key, String(value)),
    removeItem: (key: string) => void items.delete(key),
  };
  Object.defineProperty(globalThis, "localStorage", { value: storage, configurable: true, writable: true });
  return items;
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
  delete (globalThis as { localStorage?: unknown }).localStorage;
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
  assert.deepEqual(server.calls.at(-1), { path: "/auth/logout", method: "POST", bearer: null, body: '{"everywhere":true}' });
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

test("an API that keeps answering 401 or API Gateway's 403 costs one refresh per access token, however many calls (no refresh storm)", async () => {
  let refreshes = 0;
  let apiCalls = 0;
  const server = fakeFetch(({ path }) => {
    if (path === "/auth/login") return tokenAnswer(0);
    if (path === "/auth/refresh") return tokenAnswer(++refreshes);
    return ++apiCalls % 2 ? json(401, { error: "invalid_token" }) : gatewayDeny();
  });
  const { auth, types } = client(server.fetch);
  await auth.login("alice", "pw");
  const answers = await Promise.all(Array.from({ length: 50 }, () => auth.fetch(SESSIONS)));
  for (let i = 0; i < 50; i++) answers.push(await auth.fetch(SESSIONS));
  assert.equal(answers.length, 100);
  assert.equal(server.count("/auth/refresh"), 1, "one rotation for the first token, none for the one it got");
  assert.equal(server.count("/auth/sessions"), 150, "the 50 concurrent calls retried once each; the 50 later ones were not retried");
  assert.ok(answers.every((r) => r.status === 401 || r.status === 403));
  const last = answers.filter((r) => r.status === 403).at(-1)!;
  assert.deepEqual(await last.json(), { message: "Forbidden" }, "the caller gets the body unread");
  assert.deepEqual(types(), ["SIGNED_IN", "TOKEN_REFRESHED"]);
  // The proactive refresh is unchanged (80 s into the 100 s token), and its token may be refreshed once more.
  await advance(80_000, 400);
  assert.equal(server.count("/auth/refresh"), 2);
  await auth.fetch(SESSIONS);
  await auth.fetch(SESSIONS);
  assert.equal(server.count("/auth/refresh"), 3);
});

test("API Gateway's 403 {\"message\":\"Forbidden\"} (an authorizer's deny: a removed key, a revoked session) refreshes and sends the request once more", async () => {
  let refreshes = 0;
  const server = fakeFetch(({ path, bearer }) => {
    if (path === "/auth/login") return tokenAnswer(0);
    if (path === "/auth/refresh") return tokenAnswer(++refreshes);
    return bearer === `Bearer ${jwt(0)}` ? gatewayDeny() : json(200, { ok: true });
  });
  const { auth } = client(server.fetch);
  await auth.login("alice", "pw");
  const response = await auth.fetch(SESSIONS, { method: "POST", body: "replayable" });
  assert.equal(response.status, 200);
  const api = server.calls.filter((c) => c.path === "/auth/sessions");
  assert.deepEqual(
    api.map((c) => [c.bearer, c.body]),
    [
      [`Bearer ${jwt(0)}`, "replayable"],
      [`Bearer ${jwt(1)}`, "replayable"],
    ],
  );
  assert.equal(server.count("/auth/refresh"), 1);
});

for (const [what, body] of [
  ["the error table's JSON", JSON.stringify({ error: "forbidden", message: "Forbidden" })],
  ["plain text", "Forbidden"],
] as const) {
  test(`a 403 from the API itself (${what}) is handed back untouched, its body unread, with no refresh`, async () => {
    const server = fakeFetch(({ path }) => (path === "/auth/login" ? tokenAnswer(0) : new Response(body, { status: 403 })));
    const { auth } = client(server.fetch);
    await auth.login("alice", "pw");
    const response = await auth.fetch(SESSIONS);
    assert.equal(response.status, 403);
    assert.equal(response.bodyUsed, false);
    assert.equal(await response.text(), body);
    assert.equal(server.count("/auth/sessions"), 1);
    assert.equal(server.count("/auth/refresh"), 0);
  });
}

for (const code of ["invalid_credentials", "invalid_code", "invalid_passkey"]) {
  test(`a 401 ${code} (a wrong current password or code, a refused passkey: not a stale token) is handed back unread: no refresh, not sent again`, async () => {
    const server = fakeFetch(({ path }) => (path === "/auth/login" ? tokenAnswer(0) : json(401, { error: code, message: "wrong" })));
    const { auth, types } = client(server.fetch);
    await auth.login("alice", "pw");
    const response = await auth.fetch(`${API}/auth/password`, { method: "POST", body: '{"current_password":"wrong","new_password":"a new long passphrase"}' });
    assert.equal(response.status, 401);
    assert.equal(response.bodyUsed, false);
    assert.deepEqual(await response.json(), { error: code, message: "wrong" });
    assert.equal(server.count("/auth/password"), 1, "a second send would spend a second attempt");
    assert.equal(server.count("/auth/refresh"), 0);
    assert.deepEqual(types(), ["SIGNED_IN"]);
  });
}

test("a token a 401 got in one tab makes no other tab refresh on a 401 to it (no storm across tabs)", async () => {
  mock.timers.reset(); // BroadcastChannel delivers on the real event loop
  const channel = `test-${Math.random()}`;
  let refreshes = 0;
  const server = fakeFetch(({ path }) => {
    if (path === "/auth/login") return tokenAnswer(0);
    if (path === "/auth/refresh") return tokenAnswer(++refreshes);
    return json(401, { error: "invalid_token" });
  });
  const first = client(server.fetch, { channel });
  const second = client(server.fetch, { channel });
  await first.auth.login("alice", "pw");
  await new Promise((resolve) => setTimeout(resolve, 50));
  await first.auth.fetch(SESSIONS);
  await new Promise((resolve) => setTimeout(resolve, 50));
  // The token itself, not jwt(1) built again: that one's iat is read now and may be a second later.
  assert.equal(await second.auth.getAccessToken(), await first.auth.getAccessToken(), "the second tab took the first one's token");
  assert.equal(second.auth.getClaims()?.n, 1, "the token the first tab's refresh got");
  await second.auth.fetch(SESSIONS);
  await first.auth.fetch(SESSIONS);
  assert.equal(server.count("/auth/refresh"), 1);
});

test("a logout that never reached the server is sent first at the next start, and nothing is refreshed while it is pending", async () => {
  const storage = fakeStorage();
  let online = false;
  const server = fakeFetch(({ path }) => {
    if (path === "/auth/login") return tokenAnswer(0);
    if (!online) throw new TypeError("Failed to fetch");
    return path === "/auth/logout" ? new Response(null, { status: 204 }) : tokenAnswer(1);
  });
  const retry = { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10 };
  const tab = client(server.fetch, { retry });
  await tab.auth.login("alice", "pw");
  const loggingOut = assert.rejects(tab.auth.logout({ everywhere: true }), { code: "unavailable" });
  await advance(100, 10);
  await loggingOut;
  assert.deepEqual(tab.types(), ["SIGNED_IN", "SIGNED_OUT", "LOGOUT_PENDING"]);
  assert.deepEqual([...storage.values()], ["everywhere"], "a marker, not a token");

  // A reload, still offline: the logout is tried again, no refresh is sent, the page is told.
  const offline = client(server.fetch, { retry });
  const starting = assert.rejects(offline.auth.getAccessToken(), { code: "unavailable" });
  await advance(100, 10);
  await starting;
  assert.deepEqual(offline.types(), ["LOGOUT_PENDING"]);
  assert.equal(server.count("/auth/refresh"), 0);
  assert.equal(storage.size, 1);

  // The next reload, online: the logout (everywhere, as asked) goes first, and nothing else.
  online = true;
  const sent = server.calls.length;
  const next = client(server.fetch, { retry });
  assert.equal(await next.auth.getAccessToken(), null);
  assert.deepEqual(
    server.calls.slice(sent).map((c) => [c.path, c.body]),
    [["/auth/logout", '{"everywhere":true}']],
  );
  assert.equal(storage.size, 0);
  assert.deepEqual(next.types(), []);
  // The logout got through: a start after it refreshes as usual.
  const later = client(server.fetch, { retry });
  assert.equal(await later.auth.getAccessToken(), jwt(1));
  assert.equal(server.count("/auth/refresh"), 1);
});

test("a login sends a pending logout first, and clears the marker even if that fails again: the new session's refresh sends no logout", async () => {
  const storage = fakeStorage();
  const server = fakeFetch(({ path }) => {
    if (path === "/auth/login") return tokenAnswer(0, 10);
    if (path === "/auth/logout") return json(503, { error: "unavailable" });
    return tokenAnswer(1, 10);
  });
  const tab = client(server.fetch, { retry: { maxAttempts: 1 } });
  await tab.auth.login("alice", "pw");
  await assert.rejects(tab.auth.logout(), { code: "unavailable" });
  assert.equal(storage.size, 1);
  await tab.auth.login("alice", "pw");
  assert.deepEqual(
    server.calls.map((c) => c.path),
    ["/auth/login", "/auth/logout", "/auth/logout", "/auth/login"],
  );
  assert.equal(storage.size, 0, "the new cookie replaced the one the logout was for");
  await advance(8_100, 100);
  assert.deepEqual(server.calls.slice(4).map((c) => c.path), ["/auth/refresh"]);
  assert.deepEqual(tab.types(), ["SIGNED_IN", "SIGNED_OUT", "LOGOUT_PENDING", "LOGOUT_PENDING", "SIGNED_IN", "TOKEN_REFRESHED"]);
});

for (const [status, pending] of [
  [204, false],
  [401, false],
  [403, true],
  [500, true],
] as const) {
  test(`a logout answered ${status} ${pending ? "stays pending (LOGOUT_PENDING)" : "is done: the marker goes"}`, async () => {
    const storage = fakeStorage();
    const server = fakeFetch(({ path }) => (path === "/auth/login" ? tokenAnswer(0) : status === 204 ? new Response(null, { status }) : json(status, { error: "x" })));
    const tab = client(server.fetch);
    await tab.auth.login("alice", "pw");
    const logout = tab.auth.logout();
    await (pending ? assert.rejects(logout, { status }) : logout);
    assert.equal(storage.size, pending ? 1 : 0);
    assert.equal(tab.types().includes("LOGOUT_PENDING"), pending);
  });
}

test("another user's token, from another tab, signs the first user out and the new one in: SIGNED_OUT then SIGNED_IN, never TOKEN_REFRESHED", async () => {
  mock.timers.reset(); // BroadcastChannel delivers on the real event loop
  const channel = `test-${Math.random()}`;
  let logins = 0;
  const server = fakeFetch(() => (++logins, tokenAnswer(logins, 100, `user-${logins}`)));
  const first = client(server.fetch, { channel });
  const second = client(server.fetch, { channel });
  await first.auth.login("alice", "pw");
  await new Promise((resolve) => setTimeout(resolve, 50));
  await first.auth.login("bob", "pw");
  await new Promise((resolve) => setTimeout(resolve, 50));
  const seen = (events: AuthEvent[]) => events.map((e) => (e.type === "SIGNED_OUT" ? [e.type, e.reason] : [e.type, "claims" in e ? e.claims?.sub : undefined]));
  const expected = [
    ["SIGNED_IN", "user-1"],
    ["SIGNED_OUT", "user_changed"],
    ["SIGNED_IN", "user-2"],
  ];
  assert.deepEqual(seen(second.events), expected, "the other tab");
  assert.deepEqual(seen(first.events), expected, "the tab that signed in");
  assert.equal(second.auth.getClaims()?.sub, "user-2");
  assert.equal(server.count("/auth/refresh"), 0);
});
