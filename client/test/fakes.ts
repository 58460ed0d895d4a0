// What the MFA and passkey tests share: a fake `fetch` that records each request as sent,
// tokens and answers shaped as the server's, clients closed after each test, and a
// `localStorage` for the logout-pending marker.
import { createAuthClient, type AuthClient, type AuthClientOptions, type AuthEvent } from "../src/index.js";

export const API = "https://api.test";

export type Call = { path: string; method: string; bearer: string | null; contentType: string | null; credentials: RequestCredentials; body: unknown };
export type Handler = (call: Call) => Response | Promise<Response>;

/** A fake `fetch`: records each request (a `Request` from `auth.fetch`, or a URL and init) and answers with `handler`. */
export function fakeFetch(handler: Handler) {
  const calls: Call[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const text = await request.text();
    const call: Call = {
      path: new URL(request.url).pathname,
      method: request.method,
      bearer: request.headers.get("authorization"),
      contentType: request.headers.get("content-type"),
      // `new Request` drops `credentials` in Node: take it from the init when there is one.
      credentials: init?.credentials ?? request.credentials,
      body: text === "" ? undefined : JSON.parse(text),
    };
    calls.push(call);
    return handler(call);
  };
  return { calls, fetch: fetch as typeof globalThis.fetch, paths: () => calls.map((c) => `${c.method} ${c.path}`) };
}

/** One issue time for every token, so that a token built again in an assertion is the same string. */
export const ISSUED_AT = Math.floor(Date.now() / 1000);

/** An unsigned JWT; `n` tells tokens apart, `amr` is what the server says of the authentication. */
export function jwt(n: number, amr = ["pwd"], sub = "user-1"): string {
  const iat = ISSUED_AT;
  const payload = { sub, sid: "session-1", iat, exp: iat + 900, n, amr, auth_time: iat };
  return `e30.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;
}

export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
export const tokenAnswer = (n: number, amr?: string[], sub?: string) => json(200, { access_token: jwt(n, amr, sub), token_type: "Bearer", expires_in: 900 });
export const noContent = () => new Response(null, { status: 204 });
export const refusal = (status: number, code: string, headers?: Record<string, string>) => json(status, { error: code, message: `message for ${code}` }, headers);

const clients: AuthClient[] = [];
/** A client of `fetch` (no cross-tab channel), recording its events; closed by {@link closeClients}. */
export function client(fetch: typeof globalThis.fetch, options: Partial<AuthClientOptions> = {}) {
  const auth = createAuthClient({ baseUrl: API, fetch, channel: null, ...options });
  const events: AuthEvent[] = [];
  auth.onAuthStateChange((event) => events.push(event));
  clients.push(auth);
  return { auth, events, types: () => events.map((e) => e.type) };
}

/** Closes every client of the test and removes its `localStorage`: each file's `afterEach`. */
export function closeClients() {
  clients.splice(0).forEach((auth) => auth.close());
  delete (globalThis as { localStorage?: unknown }).localStorage;
}

/** A `localStorage` for the logout-pending marker, removed after the test. */
export function fakeStorage() {
  const items = new Map<string, string>();
  const storage = {
    getItem: (key: string) => items.get(key) ?? null,
    setItem: (key: string, value: string) => void items.set(key, String(value)),
    removeItem: (key: string) => void items.delete(key),
  };
  Object.defineProperty(globalThis, "localStorage", { value: storage, configurable: true, writable: true });
  return items;
}
