import { backoffDelay, type RetryOptions } from "./backoff.js";
import { decodeClaims, type Claims } from "./claims.js";
import { AuthError } from "./errors.js";

/** Why a tab is signed out: it or another tab signed out, the server ended the session, or it caught a replayed refresh token. */
export type SignOutReason = "logout" | "session_ended" | "token_reused";

/**
 * What `onAuthStateChange` reports; the names are supabase-js's, plus `REFRESH_RETRYING`.
 * `SIGNED_OUT` ends a signed-in state (or reports a replayed token); a page that finds no
 * session when it starts gets no event, only `getAccessToken()` resolving to `null`.
 */
export type AuthEvent =
  | { type: "SIGNED_IN"; claims: Claims | null }
  | { type: "TOKEN_REFRESHED"; claims: Claims | null }
  | { type: "SIGNED_OUT"; reason: SignOutReason }
  /** A refresh met a network error or a 503 and is tried again: the user is still signed in. */
  | { type: "REFRESH_RETRYING"; attempt: number; retryInMs: number; error: AuthError };

/** Where the three endpoints are under `baseUrl`. */
export interface AuthPaths {
  login: string;
  refresh: string;
  logout: string;
}

export interface AuthClientOptions {
  /** The API's root, e.g. `https://api.example.com` or `http://localhost:9000`; the paths are appended to it. */
  baseUrl: string;
  /** Defaults `/auth/login`, `/auth/refresh`, `/auth/logout` (API Gateway); `cargo lambda watch` serves `/lambda-url/login/` etc. */
  paths?: Partial<AuthPaths>;
  /** How refreshes that meet a network error or a 503 are retried. */
  retry?: RetryOptions;
  /** The `BroadcastChannel` the app's tabs share; `null` keeps each tab alone. Default `auth-client:<baseUrl>`. */
  channel?: string | null;
  /** The `fetch` to call (default: the global one). */
  fetch?: typeof fetch;
}

export interface AuthClient {
  /** Signs in: the access token stays in this object, the refresh token in its HttpOnly cookie. Throws `AuthError` (`invalid_credentials`, `too_many_attempts`, ...). */
  login(username: string, password: string): Promise<Claims | null>;
  /** Signs out this tab and every other tab at once, then ends the session on the server (`everywhere`: every session of the user). */
  logout(options?: { everywhere?: boolean }): Promise<void>;
  /** `fetch` with `Authorization: Bearer`; after a 401 it refreshes and sends the request once more, when its body can be sent again. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** A valid access token, refreshed first if needed; `null` when signed out. */
  getAccessToken(): Promise<string | null>;
  /** The current access token's claims (`sub`, `sid`, `exp`, ...), unverified; `null` when there is none. */
  getClaims(): Claims | null;
  /** Calls `callback` on every state change; returns the function that stops it. */
  onAuthStateChange(callback: (event: AuthEvent) => void): () => void;
  /** Stops the refresh timer and leaves the tabs' channel. */
  close(): void;
}

/** The body of a 200 from login or refresh (`docs/http-api.md`). */
type TokenAnswer = { access_token: string; expires_in: number };

/** What one tab tells the others: the token it got (so they need not refresh too), or that it signed out. */
type TabMessage = { type: "token"; token: string; expiresAt: number } | { type: "signed_out"; reason: SignOutReason };

/** The answers a retry may cure: the server or a gateway is down for a moment. 401 and 4xx never are. */
const RETRIED = new Set([502, 503, 504]);
/** A token closer than this to its expiry is not sent: it could expire on the way. */
const EXPIRY_MARGIN_MS = 500;

/** Creates one client per app and tab; it holds the only copy of the access token. */
export function createAuthClient(options: AuthClientOptions): AuthClient {
  const send = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const paths: AuthPaths = { login: "/auth/login", refresh: "/auth/refresh", logout: "/auth/logout", ...options.paths };
  const retry = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 10_000, ...options.retry };
  const url = (path: string) => options.baseUrl.replace(/\/$/, "") + path;
  const listeners = new Set<(event: AuthEvent) => void>();
  const channelName = options.channel === undefined ? `auth-client:${options.baseUrl}` : options.channel;
  const channel = channelName !== null && typeof BroadcastChannel === "function" ? new BroadcastChannel(channelName) : null;

  let token: string | null = null;
  let expiresAt = 0;
  let status: "unknown" | "signed_in" | "signed_out" = "unknown";
  // Bumped by every sign-in and sign-out: a refresh that started before one is stale.
  let epoch = 0;
  let inflight: Promise<string> | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const emit = (event: AuthEvent) => {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (error) {
        // A broken listener must not break the client; the error still surfaces.
        setTimeout(() => {
          throw error;
        });
      }
    }
  };

  const current = () => {
    if (status !== "signed_in" || token === null) throw new AuthError("signed_out", "Not signed in");
    return token;
  };

  /** Takes a token, from the server or another tab, and plans its proactive refresh. */
  function take(next: string, nextExpiresAt: number, event?: "SIGNED_IN") {
    const type = event ?? (status === "signed_in" ? "TOKEN_REFRESHED" : "SIGNED_IN");
    token = next;
    expiresAt = nextExpiresAt;
    status = "signed_in";
    clearTimeout(timer);
    // Refresh a fifth of the lifetime (at most a minute) before expiry, so calls never wait for it.
    const claims = decodeClaims(next);
    const lead = Math.min(60_000, ((claims?.exp ?? 0) - (claims?.iat ?? 0)) * 200);
    timer = setTimeout(() => refresh().catch(() => {}), Math.max(0, expiresAt - lead - Date.now()));
    emit({ type, claims });
  }

  /** Takes the server's token answer and hands it to the other tabs, so they do not refresh too. */
  function accept(body: TokenAnswer, event?: "SIGNED_IN") {
    take(body.access_token, Date.now() + body.expires_in * 1000, event);
    channel?.postMessage({ type: "token", token: body.access_token, expiresAt } satisfies TabMessage);
    return body.access_token;
  }

  function signOut(reason: SignOutReason, tellOtherTabs: boolean) {
    epoch++;
    inflight = null;
    clearTimeout(timer);
    token = null;
    expiresAt = 0;
    const was = status;
    status = "signed_out";
    if (tellOtherTabs) channel?.postMessage({ type: "signed_out", reason } satisfies TabMessage);
    // A page that finds no session at start was never signed in: nothing ended. A replayed
    // token is news even then (the demo's thief sees it).
    if (was === "signed_in" || reason === "token_reused") emit({ type: "SIGNED_OUT", reason });
  }

  channel?.addEventListener("message", (event) => {
    const message = (event as MessageEvent<TabMessage>).data;
    if (message.type === "signed_out") signOut(message.reason, false);
    else if (message.expiresAt > expiresAt) take(message.token, message.expiresAt);
  });

  /**
   * Sends `request` until it gets an answer a retry cannot change, waiting with
   * backoff after a network error or a 502/503/504. `null` when `stop()` turns true
   * during a wait; throws `unavailable` after `maxAttempts` tries.
   */
  async function retrying(request: () => Promise<Response>, stop: () => boolean, onRetry?: (event: AuthEvent) => void) {
    for (let attempt = 1; ; attempt++) {
      let error: AuthError;
      try {
        const response = await request();
        if (!RETRIED.has(response.status)) return response;
        error = await AuthError.fromResponse(response);
      } catch (cause) {
        error = new AuthError("network_error", "No answer from the auth server", { cause });
      }
      if (attempt >= retry.maxAttempts) {
        throw new AuthError("unavailable", `The auth server did not answer after ${attempt} tries`, { cause: error });
      }
      const retryInMs = backoffDelay(attempt, retry);
      onRetry?.({ type: "REFRESH_RETRYING", attempt, retryInMs, error });
      await new Promise((resolve) => setTimeout(resolve, retryInMs));
      if (stop()) return null;
    }
  }

  /** One refresh per tab at a time: every caller shares the one in flight. */
  function refresh(): Promise<string> {
    if (inflight === null) {
      const started = refreshOnce().finally(() => {
        if (inflight === started) inflight = null;
      });
      inflight = started;
    }
    return inflight;
  }

  async function refreshOnce(): Promise<string> {
    const startedAt = epoch;
    const seen = expiresAt;
    // Another tab's token, a sign-in or a sign-out while this one waited makes it moot.
    const moot = () => epoch !== startedAt || expiresAt > seen;
    const response = await retrying(
      () => send(url(paths.refresh), { method: "POST", credentials: "include" }),
      moot,
      emit,
    );
    if (response?.ok) {
      const body = (await response.json()) as TokenAnswer;
      return moot() ? current() : accept(body);
    }
    if (response === null || moot()) return current();
    const error = await AuthError.fromResponse(response);
    if (response.status === 401) signOut(error.code === "token_reused" ? "token_reused" : "session_ended", true);
    throw error;
  }

  async function validToken(): Promise<string> {
    if (status === "signed_out") throw new AuthError("signed_out", "Not signed in");
    if (token !== null && Date.now() < expiresAt - EXPIRY_MARGIN_MS) return token;
    return refresh();
  }

  async function authFetch(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
    // A stream is read once: such a request is never sent twice.
    const replayable = !(typeof ReadableStream === "function" && init.body instanceof ReadableStream);
    const attempt = (bearer: string) => {
      const request = new Request(input instanceof Request ? input.clone() : input, init);
      request.headers.set("authorization", `Bearer ${bearer}`);
      return send(request);
    };
    const used = await validToken();
    const response = await attempt(used);
    if (response.status !== 401) return response;
    let fresh: string;
    try {
      // Another call may have refreshed already; otherwise this one does.
      fresh = token !== null && token !== used ? token : await refresh();
    } catch {
      return response;
    }
    // Once only: a 401 with the fresh token is the caller's answer, not a reason to loop.
    return replayable ? attempt(fresh) : response;
  }

  return {
    async login(username, password) {
      let response: Response;
      try {
        response = await send(url(paths.login), {
          method: "POST",
          credentials: "include",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ username, password }),
        });
      } catch (cause) {
        throw new AuthError("network_error", "The login request got no readable answer (offline, or this origin is not allowed)", { cause });
      }
      if (!response.ok) throw await AuthError.fromResponse(response);
      const body = (await response.json()) as TokenAnswer;
      epoch++;
      inflight = null;
      accept(body, "SIGNED_IN");
      return decodeClaims(current());
    },

    async logout({ everywhere = false } = {}) {
      // Signed out here and in the other tabs at once, whatever the network does next.
      signOut("logout", true);
      const init: RequestInit = everywhere
        ? { method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: '{"everywhere":true}' }
        : { method: "POST", credentials: "include" };
      // The server asks for a 503'd logout to be sent again: the retry finishes the job.
      const response = await retrying(() => send(url(paths.logout), init), () => false);
      if (response && !response.ok) throw await AuthError.fromResponse(response);
    },

    fetch: authFetch,

    async getAccessToken() {
      try {
        return await validToken();
      } catch (error) {
        if (error instanceof AuthError && (error.code === "signed_out" || error.status === 401)) return null;
        throw error;
      }
    },

    getClaims: () => (token === null ? null : decodeClaims(token)),

    onAuthStateChange(callback) {
      listeners.add(callback);
      return () => listeners.delete(callback);
    },

    close() {
      clearTimeout(timer);
      channel?.close();
      listeners.clear();
    },
  };
}
