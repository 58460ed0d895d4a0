import { backoffDelay, type RetryOptions } from "./backoff.js";
import { decodeClaims, type Claims } from "./claims.js";
import { AuthError } from "./errors.js";

/**
 * Why a tab is signed out: it or another tab signed out, the server ended the session, it
 * caught a replayed refresh token, or another user signed in (in this tab or another one;
 * a `SIGNED_IN` with the new user's claims follows at once).
 */
export type SignOutReason = "logout" | "session_ended" | "token_reused" | "user_changed";

/**
 * What `onAuthStateChange` reports; the names are supabase-js's, plus `REFRESH_RETRYING` and `LOGOUT_PENDING`.
 * `SIGNED_OUT` ends a signed-in state (or reports a replayed token); a page that finds no
 * session when it starts gets no event, only `getAccessToken()` resolving to `null`.
 */
export type AuthEvent =
  | { type: "SIGNED_IN"; claims: Claims | null }
  | { type: "TOKEN_REFRESHED"; claims: Claims | null }
  | { type: "SIGNED_OUT"; reason: SignOutReason }
  /** A refresh met a network error or a 503 and is tried again: the user is still signed in. */
  | { type: "REFRESH_RETRYING"; attempt: number; retryInMs: number; error: AuthError }
  /**
   * A logout did not reach the server (after every retry, or refused): the tabs are signed
   * out but the session and its cookie are live. It is sent again before any refresh or
   * login of this app in this browser (a reload, a new tab), or by calling `logout()` again.
   */
  | { type: "LOGOUT_PENDING"; error: AuthError };

/** Where the endpoints are under `baseUrl`, one path each (under `cargo lambda watch` each function has its own base). */
export interface AuthPaths {
  login: string;
  /** The second step of a login with a second factor: `/auth/login/mfa`, served by the login function. */
  loginMfa: string;
  refresh: string;
  logout: string;
  /** The register function's five: `/auth/signup`, `/auth/verify-email`, ... */
  signUp: string;
  verifyEmail: string;
  resendVerification: string;
  requestPasswordReset: string;
  resetPassword: string;
  /**
   * The account function's MFA routes' root, `/auth/mfa`: the status there, the others
   * under it (`/totp`, `/totp/confirm`, `/recovery-codes`, `/step-up`, `/step-up/start`).
   */
  mfa: string;
  /**
   * The account function's passkey routes' root, `/auth/passkeys`: the list there,
   * `/register/start`, `/register/finish` and `/{id}` under it.
   */
  passkeys: string;
  /** The login function's passkey sign-in, `/auth/passkeys/login`: `/start` and `/finish` under it. */
  passkeyLogin: string;
}

/** A second factor: a code from the authenticator app, or one of the single-use recovery codes. */
export type MfaFactor = { code: string } | { recoveryCode: string };

/**
 * What a step-up takes: a code, or `{ passkey: true }`, one of the user's passkeys (the
 * server names them; the browser asks for one). Login's challenge has its own passkey call,
 * `verifyMfaWithPasskey`, since its request comes with the challenge.
 */
export type StepUpFactor = MfaFactor | { passkey: true };

/** The second factors the server offers (`totp`, `recovery_code`, `webauthn`: a passkey); others may come. */
export type MfaMethod = "totp" | "recovery_code" | "webauthn" | (string & {});

/**
 * A WebAuthn request as the server sends it (webauthn-rs's JSON, binary members as base64url):
 * what the browser's `PublicKeyCredential.parseRequestOptionsFromJSON` takes. Opaque to the page.
 */
export interface PasskeyRequestOptions {
  publicKey: PublicKeyCredentialRequestOptionsJSON;
  mediation?: CredentialMediationRequirement;
}

/** One of the signed-in user's passkeys; `id` is the credential's id (base64url). */
export interface Passkey {
  id: string;
  /** The label given at registration; `null` without one. */
  name: string | null;
  /** Epoch seconds. */
  createdAt: number;
  /** Epoch seconds of its last sign-in, `null` if none; only `listPasskeys` reports it. */
  lastUsedAt?: number | null;
}

/**
 * What `login()` resolves to for an account with a second factor: nobody is signed in yet
 * and no cookie was set. Pass `mfaToken` with a factor to `verifyMfa()`; it is good for
 * `expiresIn` seconds, one success and five wrong codes.
 */
export interface MfaChallenge {
  mfaRequired: true;
  mfaToken: string;
  methods: MfaMethod[];
  expiresIn: number;
  /** When `methods` has `webauthn`: the request for the user's passkeys, which `verifyMfaWithPasskey` runs. */
  webauthn?: PasskeyRequestOptions;
}

/**
 * A challenge whose token the page never sees: a sign-in through another provider came back
 * with `?mfa_required=...` and left it in an HttpOnly cookie. `pendingMfa()` describes it;
 * answer it with `verifyMfa({ code })` or `verifyMfaWithPasskey(challenge)`.
 */
export type PendingMfaChallenge = Omit<MfaChallenge, "mfaToken">;

/** The signed-in user's second factors (`GET /auth/mfa`). */
export interface MfaStatus {
  totp: boolean;
  recoveryCodesLeft: number;
  /** How many passkeys the user has; any makes `webauthn` one of the `methods`. */
  passkeys: number;
  methods: MfaMethod[];
}

/** A TOTP secret waiting for its first code (`confirmTotp`); nothing is active until then. */
export interface TotpEnrollment {
  /** Base32, for typing into an app that cannot scan. */
  secret: string;
  /** `otpauth://totp/...`: what the QR code shows. */
  otpauthUri: string;
  /** Seconds the enrolment waits for its confirmation. */
  expiresIn: number;
}

export interface AuthClientOptions {
  /** The API's root, e.g. `https://api.example.com` or `http://localhost:9000`; the paths are appended to it. */
  baseUrl: string;
  /**
   * Defaults `/auth/login`, `/auth/refresh`, `/auth/logout`, `/auth/signup`, `/auth/verify-email`,
   * `/auth/verify-email/resend`, `/auth/password/forgot`, `/auth/password/reset`, `/auth/login/mfa`,
   * `/auth/mfa`, `/auth/passkeys`, `/auth/passkeys/login` (API Gateway); `cargo lambda watch` serves
   * `/lambda-url/login/`, `/lambda-url/login/auth/login/mfa`, `/lambda-url/register/auth/signup`,
   * `/lambda-url/account/auth/mfa`, `/lambda-url/account/auth/passkeys`, `/lambda-url/login/auth/passkeys/login` etc.
   */
  paths?: Partial<AuthPaths>;
  /** How refreshes that meet a network error or a 503 are retried. */
  retry?: RetryOptions;
  /** The `BroadcastChannel` the app's tabs share; `null` keeps each tab alone. Default `auth-client:<baseUrl>`. */
  channel?: string | null;
  /** The `fetch` to call (default: the global one). */
  fetch?: typeof fetch;
  /**
   * Asked for a second factor when an MFA call answers 403 `step_up_required` (the session
   * has not passed one recently): the client steps up with it (`{ passkey: true }`: the
   * browser's prompt for one of the user's passkeys), refreshes (so the new token carries
   * the new `amr` and `auth_time`) and sends the call once more. `null`, or no callback,
   * lets the `step_up_required` error through. Calls that meet it together share one prompt.
   */
  onStepUpRequired?: () => Promise<StepUpFactor | null>;
}

export interface AuthClient {
  /**
   * Signs in: the access token stays in this object, the refresh token in its HttpOnly cookie.
   * For an account with a second factor it signs nobody in and resolves to an
   * {@link MfaChallenge} instead of the claims (`if (result?.mfaRequired)`): finish with `verifyMfa`.
   * Throws `AuthError` (`invalid_credentials`, `too_many_attempts`, `email_not_verified`: a
   * correct password for an account whose address is not verified yet, ...).
   */
  login(username: string, password: string): Promise<Claims | MfaChallenge | null>;
  /**
   * The second step of a login that answered a challenge: signs in exactly as `login` does.
   * After a sign-in through another provider the page has no `mfaToken` (the redirect back
   * said `mfa_required`; the challenge is in an HttpOnly cookie): leave it out.
   * Throws `invalid_code` (a wrong code: the challenge stays usable until five of them),
   * `invalid_token` (the challenge is used, expired or spent: log in again), `too_many_attempts`, ...
   */
  verifyMfa(answer: { mfaToken?: string } & MfaFactor): Promise<Claims | null>;
  /**
   * Answers a challenge whose `methods` have `webauthn` with a passkey: the browser asks for
   * one of the user's passkeys (`challenge.webauthn`), then this signs in exactly as `login`
   * does. Throws `passkeys_unsupported`, `passkey_cancelled` (the challenge stays usable),
   * `invalid_passkey`, `invalid_token`, ... (see `signInWithPasskey`).
   */
  verifyMfaWithPasskey(challenge: MfaChallenge | PendingMfaChallenge): Promise<Claims | null>;
  /**
   * After a sign-in through another provider came back with `?mfa_required=...`: the challenge
   * waiting in its HttpOnly cookie (what may answer it, and the passkey request when `methods`
   * has `webauthn`). Signs nobody in. Throws `invalid_token` when there is none (answered,
   * expired, or never set).
   */
  pendingMfa(): Promise<PendingMfaChallenge>;
  /**
   * Signs in with a passkey, no username or password: the browser offers the passkeys it
   * holds for this site, and the server knows the user from the one chosen. Signs in exactly
   * as `login` does. Throws `passkeys_unsupported` (this browser lacks WebAuthn's JSON
   * helpers; nothing sent), `passkey_cancelled` (the user closed the browser's prompt, or it
   * timed out), `passkey_failed`, `invalid_passkey` (the server refused the passkey: unknown
   * or removed), `network_error`, ...
   */
  signInWithPasskey(): Promise<Claims | null>;
  /**
   * Asks for an account; the server answers the same for a new and a taken address, and
   * e-mails a verification link (`/verify-email#token=...`). Signs nobody in. Throws
   * `AuthError` (`weak_password`, `invalid_request`, `signup_closed`, `forbidden_origin`, `network_error`, ...).
   */
  signUp(username: string, password: string): Promise<void>;
  /**
   * Sends the token of a verification link with the account's password (whoever signed up
   * first with someone else's address must not keep a way in). Signs nobody in: log in
   * afterwards. Throws `invalid_token` (used, expired, superseded, unknown), `invalid_credentials`
   * (wrong password; the link still works), ...
   */
  verifyEmail(token: string, password: string): Promise<void>;
  /** Asks for a new verification e-mail (the server answers the same whether or not one is sent). */
  resendVerification(username: string): Promise<void>;
  /** Asks for a password reset e-mail (`/reset-password#token=...`); the same answer for any address. */
  requestPasswordReset(username: string): Promise<void>;
  /**
   * Sets a new password with a reset link's token. The server ends every session of the
   * user and signs nobody in; a tab signed in as that user learns it at its next refresh
   * (`SIGNED_OUT`, `session_ended`). Throws `weak_password`, `invalid_token`, ...
   */
  resetPassword(token: string, newPassword: string): Promise<void>;
  /**
   * Signs out this tab and every other tab at once, then ends the session on the server
   * (`everywhere`: every session of the user). When the server cannot be reached (after
   * every retry) it rejects and emits `LOGOUT_PENDING`; the logout is sent again before
   * the next refresh or login, so a reload cannot bring the session back.
   */
  logout(options?: { everywhere?: boolean }): Promise<void>;
  /**
   * `fetch` with `Authorization: Bearer`. After a 401, or API Gateway's 403 `{"message":"Forbidden"}`
   * (an authorizer's deny), it refreshes, at most once per access token, and sends the
   * request once more when its body can be sent again. A 401 `invalid_code`,
   * `invalid_credentials` or `invalid_passkey` (a wrong code or password, a refused passkey)
   * is returned as it is: sending it again would only spend another attempt.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /**
   * The MFA calls below go to the account function with `Authorization: Bearer`, through
   * `fetch` (a stale token is refreshed once), and throw the server's answer as an `AuthError`
   * (`signed_out` sends nothing). A 403 `step_up_required` goes through `onStepUpRequired`.
   */
  mfaStatus(): Promise<MfaStatus>;
  /** Starts a TOTP enrolment: a new secret to show as a QR code. Throws `mfa_already_enabled` when TOTP is on. */
  enrollTotp(): Promise<TotpEnrollment>;
  /**
   * Turns TOTP on with a first code from the app; resolves to the ten recovery codes, shown
   * this once. Throws `invalid_code`, or `invalid_request` when no enrolment is waiting.
   */
  confirmTotp(code: string): Promise<string[]>;
  /** Turns TOTP off (the server asks for a recent second factor). */
  disableTotp(): Promise<void>;
  /** Ten new recovery codes in place of the old ones (the server asks for a recent second factor). */
  regenerateRecoveryCodes(): Promise<string[]>;
  /**
   * Proves a second factor for this session, for the calls that ask for a recent one; the
   * next refresh's token carries the new `amr` and `auth_time`. `{ passkey: true }` asks the
   * browser for one of the user's passkeys (the server's request names them). Throws
   * `invalid_code`, `invalid_passkey`, `invalid_request` (a passkey asked of a user without
   * one), and as `signInWithPasskey` does `passkeys_unsupported` (nothing sent),
   * `passkey_cancelled`, `passkey_failed`, ...
   */
  stepUp(factor: StepUpFactor): Promise<void>;
  /**
   * Creates a passkey for the signed-in user (the browser's prompt, an authenticator that
   * keeps it and verifies the user) and stores it on the server under `name`. Like the MFA
   * calls it goes through `fetch` and `onStepUpRequired` (a user with a second factor needs a
   * recent one). Throws `passkeys_unsupported`, `passkey_cancelled`, `passkey_exists` (this
   * authenticator already holds one of the user's passkeys), `invalid_passkey`, ...
   */
  registerPasskey(name?: string): Promise<Passkey>;
  /** The signed-in user's passkeys, with when each was last used. */
  listPasskeys(): Promise<Passkey[]>;
  /**
   * Removes one of the user's passkeys from the server (it no longer signs in; the
   * authenticator still holds it). The server asks for a recent second factor, as for
   * turning TOTP off (`onStepUpRequired`). Throws `not_found` for an id that is not the user's.
   */
  deletePasskey(id: string): Promise<void>;
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
type TokenAnswer = { access_token: string; expires_in: number; mfa_required?: undefined };
/** Login's 200 for an account with a second factor: no token, no cookie. */
type ChallengeAnswer = { mfa_required: true; mfa_token: string; methods: MfaMethod[]; expires_in: number; webauthn?: PasskeyRequestOptions };
/** The server's passkey as JSON. */
type PasskeyAnswer = { id: string; name?: string | null; created_at: number; last_used_at?: number | null };
/** A passkey ceremony's start: the options for the browser, and the token that ties its finish to them. */
type CeremonyAnswer<Options> = { passkey_token: string; options: Options };

/**
 * What one tab tells the others: the token it got (so they need not refresh too; `spent`
 * when a 401/403 made it, so a 401/403 to it makes no tab refresh again), or that it signed out.
 */
type TabMessage = { type: "token"; token: string; expiresAt: number; spent: boolean } | { type: "signed_out"; reason: SignOutReason };

/** The answers a retry may cure: the server or a gateway is down for a moment. 401 and 4xx never are. */
const RETRIED = new Set([502, 503, 504]);
/** A token closer than this to its expiry is not sent: it could expire on the way. */
const EXPIRY_MARGIN_MS = 500;
/** The body of API Gateway's own 403: an HTTP API's answer to a Lambda authorizer's deny. */
const GATEWAY_DENY = '{"message":"Forbidden"}';

/**
 * The 401s of our error table about what was sent, not about the token (a wrong TOTP or
 * recovery code, a wrong current password, a refused passkey): sending it again with a
 * fresh token would only spend one more of the few attempts the server allows, or present
 * a passkey ceremony's token the server has already used up.
 */
const WRONG_ANSWERS = ["invalid_code", "invalid_credentials", "invalid_passkey"];

/**
 * An answer that may mean the access token is stale (a removed key, a revoked session): a
 * 401 (but for {@link WRONG_ANSWERS}), or a 403 whose body is API Gateway's, read from a
 * clone so the caller's stays unread. A 403 from the API itself (another body) is its
 * answer, not the token's.
 */
async function maybeStale(response: Response) {
  const { status } = response;
  const body = status === 401 || status === 403 ? await response.clone().json().catch(() => null) : null;
  return status === 401 ? !WRONG_ANSWERS.includes(body?.error) : status === 403 && JSON.stringify(body) === GATEWAY_DENY;
}

/**
 * The browser's WebAuthn with its JSON helpers (`parse*OptionsFromJSON`, `toJSON`), which turn
 * the server's base64url members into buffers and back. A browser without them (or a page
 * that is not a secure context, where there is no WebAuthn at all) gets `passkeys_unsupported`
 * before anything is sent, rather than a copy of that conversion in this library.
 */
function passkeyApi(): typeof PublicKeyCredential {
  const api = globalThis.PublicKeyCredential;
  if (!api?.parseCreationOptionsFromJSON || !api.parseRequestOptionsFromJSON || !api.prototype.toJSON || !globalThis.navigator?.credentials) {
    throw new AuthError("passkeys_unsupported", "This browser cannot use passkeys here (no WebAuthn JSON helpers)");
  }
  return api;
}

/**
 * Runs one of the browser's passkey prompts and returns the credential as the server reads
 * it (`toJSON()`). The browser's errors become `AuthError`s: `NotAllowedError` (the user
 * closed the prompt or it timed out; the browser does not say which, on purpose) and
 * `AbortError` are `passkey_cancelled`, `InvalidStateError` (the authenticator already holds
 * one of the user's passkeys) `passkey_exists`, anything else `passkey_failed` (options the
 * parser refused too: it runs inside `prompt`).
 */
async function ceremony(prompt: () => Promise<Credential | null>): Promise<unknown> {
  let credential: Credential | null;
  try {
    credential = await prompt();
  } catch (cause) {
    const name = (cause as Error | undefined)?.name;
    const code = name === "NotAllowedError" || name === "AbortError" ? "passkey_cancelled" : name === "InvalidStateError" ? "passkey_exists" : "passkey_failed";
    throw new AuthError(code, String((cause as Error | undefined)?.message ?? cause), { cause });
  }
  if (!credential) throw new AuthError("passkey_cancelled", "No passkey was chosen");
  return (credential as PublicKeyCredential).toJSON();
}

/** Asks the browser for one of the passkeys the server's request allows, with the mediation it asks for. */
const getPasskey = (api: typeof PublicKeyCredential, { publicKey, mediation }: PasskeyRequestOptions) =>
  ceremony(() => navigator.credentials.get({ publicKey: api.parseRequestOptionsFromJSON(publicKey), ...(mediation && { mediation }) }));

/** The server's passkey in the page's terms; one registered without a label has `name` null, whether the server sends null or nothing. */
const passkey = (answer: PasskeyAnswer): Passkey => ({ id: answer.id, name: answer.name ?? null, createdAt: answer.created_at });

/** Creates one client per app and tab; it holds the only copy of the access token. */
export function createAuthClient(options: AuthClientOptions): AuthClient {
  const send = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const paths: AuthPaths = {
    login: "/auth/login",
    loginMfa: "/auth/login/mfa",
    refresh: "/auth/refresh",
    logout: "/auth/logout",
    signUp: "/auth/signup",
    verifyEmail: "/auth/verify-email",
    resendVerification: "/auth/verify-email/resend",
    requestPasswordReset: "/auth/password/forgot",
    resetPassword: "/auth/password/reset",
    mfa: "/auth/mfa",
    passkeys: "/auth/passkeys",
    passkeyLogin: "/auth/passkeys/login",
    ...options.paths,
  };
  const retry = { maxAttempts: 6, baseDelayMs: 500, maxDelayMs: 10_000, ...options.retry };
  const url = (path: string) => options.baseUrl.replace(/\/$/, "") + path;
  const listeners = new Set<(event: AuthEvent) => void>();
  const channelName = options.channel === undefined ? `auth-client:${options.baseUrl}` : options.channel;
  const channel = channelName !== null && typeof BroadcastChannel === "function" ? new BroadcastChannel(channelName) : null;
  const logoutKey = `auth-client:logout-pending:${options.baseUrl}`;

  let token: string | null = null;
  let expiresAt = 0;
  let status: "unknown" | "signed_in" | "signed_out" = "unknown";
  // Bumped by every sign-in and sign-out: a refresh that started before one is stale.
  let epoch = 0;
  let inflight: Promise<string> | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // The access token a 401/403 refreshed from, then the one that refresh got: a 401/403 to
  // either refreshes nothing, so an API that keeps refusing costs one rotation per token.
  let spent: string | null = null;
  // The step-up in progress: the calls that meet step_up_required meanwhile wait for it.
  let stepping: Promise<boolean> | null = null;

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

  /**
   * The non-secret "logout pending" marker in `localStorage` (`everywhere` or `this`, never
   * a token): read it, or set it (`null` removes it). Where storage is blocked there is none.
   */
  function pendingLogout(value?: string | null): string | null {
    try {
      if (value === undefined) return localStorage.getItem(logoutKey);
      value === null ? localStorage.removeItem(logoutKey) : localStorage.setItem(logoutKey, value);
    } catch {}
    return null;
  }

  /** Takes a token, from the server or another tab, and plans its proactive refresh. */
  function take(next: string, nextExpiresAt: number, event?: "SIGNED_IN", fromStale?: boolean) {
    const claims = decodeClaims(next);
    // Another user's token (a login here or in another tab): the first user is signed out.
    if (status === "signed_in" && decodeClaims(token!)?.sub !== claims?.sub) signOut("user_changed", false);
    const type = event ?? (status === "signed_in" ? "TOKEN_REFRESHED" : "SIGNED_IN");
    token = next;
    expiresAt = nextExpiresAt;
    status = "signed_in";
    if (fromStale) spent = next;
    clearTimeout(timer);
    // Refresh a fifth of the lifetime (at most a minute) before expiry, so calls never wait for it.
    const lead = Math.min(60_000, ((claims?.exp ?? 0) - (claims?.iat ?? 0)) * 200);
    timer = setTimeout(() => refresh().catch(() => {}), Math.max(0, expiresAt - lead - Date.now()));
    emit({ type, claims });
  }

  /** Takes the server's token answer and hands it to the other tabs, so they do not refresh too. */
  function accept(body: TokenAnswer, event?: "SIGNED_IN", fromStale = false) {
    take(body.access_token, Date.now() + body.expires_in * 1000, event, fromStale);
    channel?.postMessage({ type: "token", token: body.access_token, expiresAt, spent: fromStale } satisfies TabMessage);
    return body.access_token;
  }

  function signOut(reason: SignOutReason, tellOtherTabs: boolean) {
    epoch++;
    inflight = null;
    clearTimeout(timer);
    token = spent = null;
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
    else if (message.expiresAt > expiresAt) take(message.token, message.expiresAt, undefined, message.spent);
  });

  /**
   * Sends `request` until it gets an answer a retry cannot change, waiting with
   * backoff after a network error or a 502/503/504. `null` when `stop()` turns true
   * during a wait; throws `unavailable` after `maxAttempts` tries.
   */
  async function retrying(request: () => Promise<Response>, stop: () => boolean, onRetry?: (event: AuthEvent) => void): Promise<Response | null> {
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

  /**
   * Ends the session on the server (every session of the user with `everywhere`). The
   * "logout pending" marker goes once the server answered 2xx, or 401 (nothing to end);
   * otherwise it stays, the page is told (`LOGOUT_PENDING`) and the error thrown.
   */
  async function endSession(everywhere: boolean) {
    const init: RequestInit = everywhere
      ? { method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: '{"everywhere":true}' }
      : { method: "POST", credentials: "include" };
    try {
      // The server asks for a 503'd logout to be sent again: the retry finishes the job.
      const response = (await retrying(() => send(url(paths.logout), init), () => false))!;
      if (!response.ok && response.status !== 401) throw await AuthError.fromResponse(response);
      pendingLogout(null);
    } catch (error) {
      emit({ type: "LOGOUT_PENDING", error: error as AuthError });
      throw error;
    }
  }

  /** Sends a logout left pending (by this page or an earlier one); `true` if there was one. Throws while it cannot be sent. */
  async function flushLogout() {
    const pending = pendingLogout();
    if (pending !== null) await endSession(pending === "everywhere");
    return pending !== null;
  }

  /** One refresh per tab at a time: every caller shares the one in flight. */
  function refresh(fromStale = false): Promise<string> {
    if (inflight === null) {
      const started = refreshOnce(fromStale).finally(() => {
        if (inflight === started) inflight = null;
      });
      inflight = started;
    }
    return inflight;
  }

  async function refreshOnce(fromStale: boolean): Promise<string> {
    // A logout that never reached the server goes first, and no refresh revives its session.
    if (await flushLogout()) {
      signOut("logout", true);
      return current();
    }
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
      return moot() ? current() : accept(body, undefined, fromStale);
    }
    if (response === null || moot()) return current();
    const error = await AuthError.fromResponse(response);
    if (response.status === 401) signOut(error.code === "token_reused" ? "token_reused" : "session_ended", true);
    throw error;
  }

  /** A request that got no answer the page may read (offline, refused by CORS); the client's own errors pass. */
  const unreadable = (name: string, cause: unknown) =>
    cause instanceof AuthError ? cause : new AuthError("network_error", `The ${name} request got no readable answer (offline, or this origin is not allowed)`, { cause });

  /**
   * POSTs `body` as JSON (or no body) with the cookies to `paths[path]` + `route`; no readable
   * answer (offline, CORS) is `network_error`.
   */
  async function post(path: keyof AuthPaths, body?: object, route = ""): Promise<Response> {
    try {
      return await send(url(paths[path] + route), {
        method: "POST",
        credentials: "include",
        ...(body && { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
      });
    } catch (cause) {
      throw unreadable(path, cause);
    }
  }

  /**
   * Takes a 200 from login or its MFA step: a token signs in here and in the other tabs, a
   * challenge signs nobody in and goes back to the page; any other answer is thrown and
   * changes nothing.
   */
  async function signIn(response: Response): Promise<Claims | MfaChallenge | null> {
    if (!response.ok) throw await AuthError.fromResponse(response);
    const body = (await response.json()) as TokenAnswer | ChallengeAnswer;
    if (body.mfa_required) {
      const { mfa_token: mfaToken, methods, expires_in: expiresIn, webauthn } = body;
      return { mfaRequired: true, mfaToken, methods, expiresIn, ...(webauthn && { webauthn }) };
    }
    // The new cookie replaced the one a pending logout was for: that logout can end nothing now.
    pendingLogout(null);
    epoch++;
    inflight = null;
    accept(body, "SIGNED_IN");
    return decodeClaims(current());
  }

  /**
   * One call to the account function's MFA or passkey routes (`path`), with the bearer token
   * through `authFetch`. A 2xx is returned; a 403 `step_up_required` steps up (when the page
   * gives a factor) and sends the call once more; any other answer is thrown. `stepUp`
   * itself passes `retried`, so a step-up never asks for a step-up.
   */
  async function account(name: string, method: string, path: string, body?: object, retried = false): Promise<Response> {
    let response: Response;
    try {
      response = await authFetch(url(path), body ? { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) } : { method });
    } catch (cause) {
      throw unreadable(name, cause);
    }
    if (response.ok) return response;
    const error = await AuthError.fromResponse(response);
    if (error.code === "step_up_required" && !retried && (await steppedUp())) return account(name, method, path, body, true);
    throw error;
  }

  /**
   * Asks the page for a factor, steps up with it and refreshes, so that the retried call and
   * the new token (here and in the other tabs) carry the new `amr` and `auth_time`. One at a
   * time: calls refused together share the prompt. `false` when the page has no factor to give.
   */
  function steppedUp(): Promise<boolean> {
    return (stepping ??= (async () => {
      const factor = await options.onStepUpRequired?.();
      if (!factor) return false;
      await stepUp(factor);
      // A refresh sent before the step-up may still bring a token without it: let it land first.
      await inflight?.catch(() => {});
      await refresh();
      return true;
    })().finally(() => (stepping = null)));
  }

  const factorBody = (factor: MfaFactor) => ("code" in factor ? { code: factor.code } : { recovery_code: factor.recoveryCode });

  /**
   * Steps up with `factor`; never asks for a step-up itself (`retried`). A code is posted as
   * it is. A passkey needs the server's request first: step-up/start names the user's
   * passkeys under a single-use `passkey_token`, the browser signs one, and the assertion
   * goes back with that token (so a refused one is not sent again: `invalid_passkey`).
   */
  async function stepUp(factor: StepUpFactor) {
    let body: object;
    if ("passkey" in factor) {
      const api = passkeyApi();
      const start = await account("stepUp", "POST", paths.mfa + "/step-up/start", undefined, true);
      const { passkey_token, options } = (await start.json()) as CeremonyAnswer<PasskeyRequestOptions>;
      body = { passkey_token, webauthn: await getPasskey(api, options) };
    } else body = factorBody(factor);
    await account("stepUp", "POST", paths.mfa + "/step-up", body, true);
  }
  const recoveryCodes = async (response: Response) => ((await response.json()) as { recovery_codes: string[] }).recovery_codes;

  /** The register function's requests: 202 or 204 is done (nothing else changes here), any other answer its `AuthError`. */
  async function request(path: keyof AuthPaths, body: object): Promise<void> {
    const response = await post(path, body);
    if (response.status !== 202 && response.status !== 204) throw await AuthError.fromResponse(response);
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
    if (!(await maybeStale(response))) return response;
    let fresh: string;
    try {
      // Another call or tab may have a newer token already (or signed out), or be getting
      // one; else this call refreshes, unless this token was refreshed from or got that way.
      if (token !== used) fresh = current();
      else if (inflight) fresh = await inflight;
      else if (used === spent) return response;
      else {
        spent = used;
        fresh = await refresh(true);
      }
    } catch {
      return response;
    }
    // Once only: a 401/403 with the fresh token is the caller's answer, not a reason to loop.
    return replayable ? attempt(fresh) : response;
  }

  return {
    async login(username, password) {
      // A logout left pending goes first; if it still cannot, the login goes on.
      await flushLogout().catch(() => {});
      return signIn(await post("login", { username, password }));
    },

    verifyMfa: async ({ mfaToken, ...factor }) =>
      (await signIn(await post("loginMfa", { ...(mfaToken ? { mfa_token: mfaToken } : {}), ...factorBody(factor) }))) as Claims | null,

    async verifyMfaWithPasskey(challenge) {
      const api = passkeyApi();
      if (!challenge.webauthn) throw new AuthError("invalid_request", "This challenge offers no passkey");
      const credential = await getPasskey(api, challenge.webauthn);
      // A pending challenge has no token here: its cookie goes with the request.
      const mfaToken = "mfaToken" in challenge ? challenge.mfaToken : undefined;
      return (await signIn(await post("loginMfa", { mfa_token: mfaToken, webauthn: credential }))) as Claims | null;
    },

    async pendingMfa() {
      const response = await post("loginMfa", undefined, "/options");
      if (!response.ok) throw await AuthError.fromResponse(response);
      const { methods, expires_in: expiresIn, webauthn } = (await response.json()) as ChallengeAnswer;
      return { mfaRequired: true, methods, expiresIn, ...(webauthn && { webauthn }) };
    },

    async signInWithPasskey() {
      const api = passkeyApi();
      // As login: a logout left pending goes first, the new cookie replaces its session's.
      await flushLogout().catch(() => {});
      const start = await post("passkeyLogin", undefined, "/start");
      if (!start.ok) throw await AuthError.fromResponse(start);
      const { passkey_token, options } = (await start.json()) as CeremonyAnswer<PasskeyRequestOptions>;
      const credential = await getPasskey(api, options);
      return (await signIn(await post("passkeyLogin", { passkey_token, credential }, "/finish"))) as Claims | null;
    },

    async logout({ everywhere = false } = {}) {
      // Marked before anything is sent, so that a logout that never arrives is sent at the
      // next start instead of that start refreshing the session back to life.
      pendingLogout(everywhere ? "everywhere" : "this");
      // Signed out here and in the other tabs at once, whatever the network does next.
      signOut("logout", true);
      await endSession(everywhere);
    },

    signUp: (username, password) => request("signUp", { username, password }),
    verifyEmail: (token, password) => request("verifyEmail", { token, password }),
    resendVerification: (username) => request("resendVerification", { username }),
    requestPasswordReset: (username) => request("requestPasswordReset", { username }),
    resetPassword: (token, newPassword) => request("resetPassword", { token, new_password: newPassword }),

    fetch: authFetch,

    async mfaStatus() {
      const body = await (await account("mfaStatus", "GET", paths.mfa)).json();
      // A server from before passkeys does not count them: it has none.
      return { totp: body.totp, recoveryCodesLeft: body.recovery_codes_left, passkeys: body.passkeys ?? 0, methods: body.methods };
    },
    async enrollTotp() {
      const body = await (await account("enrollTotp", "POST", paths.mfa + "/totp")).json();
      return { secret: body.secret, otpauthUri: body.otpauth_uri, expiresIn: body.expires_in };
    },
    confirmTotp: async (code) => recoveryCodes(await account("confirmTotp", "POST", paths.mfa + "/totp/confirm", { code })),
    disableTotp: async () => void (await account("disableTotp", "DELETE", paths.mfa + "/totp")),
    regenerateRecoveryCodes: async () => recoveryCodes(await account("regenerateRecoveryCodes", "POST", paths.mfa + "/recovery-codes")),
    stepUp,

    async registerPasskey(name) {
      const api = passkeyApi();
      const start = (await (await account("registerPasskey", "POST", paths.passkeys + "/register/start")).json()) as CeremonyAnswer<{
        publicKey: PublicKeyCredentialCreationOptionsJSON;
      }>;
      const credential = await ceremony(() => navigator.credentials.create({ publicKey: api.parseCreationOptionsFromJSON(start.options.publicKey) }));
      const body = { passkey_token: start.passkey_token, credential, name };
      return passkey(await (await account("registerPasskey", "POST", paths.passkeys + "/register/finish", body)).json());
    },
    async listPasskeys() {
      const { passkeys } = (await (await account("listPasskeys", "GET", paths.passkeys)).json()) as { passkeys: PasskeyAnswer[] };
      return passkeys.map((answer) => ({ ...passkey(answer), lastUsedAt: answer.last_used_at ?? null }));
    },
    deletePasskey: async (id) => void (await account("deletePasskey", "DELETE", `${paths.passkeys}/${encodeURIComponent(id)}`)),

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
