// The demo page: sign up, verify the address, reset a forgotten password, sign in (with a
// second factor when the account has one, with a passkey alone, or through another
// OpenID provider), watch the token refresh
// itself, list and end sessions, turn TOTP on and off, add and remove passkeys. Everything it
// knows about the session comes through the library, as an app's would. The QR code generator is the demo's own (scripts/demo.mjs
// bundles it); the library has no dependency.
import qrcode from "qrcode-generator";
import {
  AuthError,
  createAuthClient,
  type AuthEvent,
  type AuthPaths,
  type MfaChallenge,
  type MfaFactor,
  type MfaStatus,
  type Passkey,
  type PendingMfaChallenge,
  type StepUpFactor,
} from "../src/index.js";

interface DemoConfig {
  baseUrl: string;
  paths: Partial<AuthPaths>;
  sessionsPath: string;
  username: string;
  /** Sign-in through other providers: each one's id, name and start path. */
  oauth: { id: string; name: string; start: string }[];
}

interface Session {
  session_id: string;
  created_at: number;
  last_used_at: number;
  user_agent?: string;
  current: boolean;
}

const config = (await (await fetch("/config.json")).json()) as DemoConfig;
const auth = createAuthClient({ baseUrl: config.baseUrl, paths: config.paths, onStepUpRequired: askForSecondFactor });
const sessionsUrl = config.baseUrl + config.sessionsPath;

const $ = (id: string) => document.getElementById(id)!;
const count = (id: string) => ($(id).textContent = String(Number($(id).textContent) + 1));
const time = (epochSeconds: number) => new Date(epochSeconds * 1000).toLocaleTimeString();

const input = (id: string) => $(id) as HTMLInputElement;
/** An error as the page shows it: `code: message`. */
const describe = (error: unknown) => (error instanceof AuthError ? `${error.code}: ${error.message}` : String(error));

let polling: ReturnType<typeof setInterval> | undefined;
let loading = false;
/** Who this tab signed in as (the status line); a session found at start shows its `sub`. */
let signedInAs: string | undefined;
/** The address the "send the verification e-mail again" button is for. */
let unverified = "";
/** The login waiting for its second factor (the password, or another provider, passed). */
let challenge: MfaChallenge | PendingMfaChallenge | undefined;
/** Answers the open step-up prompt (a factor, or `null` for cancel). */
let answerStepUp: ((factor: StepUpFactor | null) => void) | undefined;
/** The user's second factors as last read (at sign-in and after each change): what the step-up prompt offers. */
let factors: MfaStatus | undefined;

/** A message under a form: `data-state` is `done` or `failed`, for styles and tests. */
function say(id: string, state: "done" | "failed", text: string) {
  $(id).dataset.state = state;
  $(id).textContent = text;
}

/** Clears a message, its state too, so a test waits for the next one. */
function unsay(id: string) {
  delete $(id).dataset.state;
  $(id).textContent = "";
}

function setStatus(state: "signed-in" | "signed-out" | "retrying", text: string) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

function logEvent(event: AuthEvent) {
  const item = document.createElement("li");
  const detail =
    event.type === "SIGNED_OUT"
      ? ` ${event.reason}`
      : event.type === "REFRESH_RETRYING"
        ? ` ${event.error.code}, next try in ${event.retryInMs} ms`
        : event.type === "LOGOUT_PENDING"
          ? ` ${event.error.code}`
          : "";
  item.textContent = `${new Date().toLocaleTimeString()} ${event.type}${detail}`;
  item.dataset.type = event.type;
  $("events").prepend(item);
}

auth.onAuthStateChange((event) => {
  logEvent(event);
  if (event.type === "SIGNED_IN" || event.type === "TOKEN_REFRESHED") {
    if (event.type === "TOKEN_REFRESHED") count("refreshes");
    setStatus("signed-in", `Signed in as ${signedInAs ?? event.claims?.sub}`);
    $("user").textContent = event.claims?.sub ?? "";
    $("session").textContent = event.claims?.sid ?? "";
    $("signed-in").hidden = false;
    $("login-form").hidden = true;
    $("account-forms").hidden = true;
    polling ??= setInterval(loadSessions, 1000);
    if (event.type === "SIGNED_IN") {
      endChallenge();
      void loadMfaStatus();
      void loadPasskeys();
    }
  } else if (event.type === "SIGNED_OUT") {
    setStatus("signed-out", `Signed out (${event.reason})`);
    $("signed-in").hidden = true;
    $("login-form").hidden = false;
    $("account-forms").hidden = false;
    signedInAs = undefined;
    clearInterval(polling);
    polling = undefined;
    // Nothing of the account's second factor stays on the page.
    answerStepUp?.(null);
    factors = undefined;
    $("mfa-status").dataset.totp = "unknown";
    delete $("mfa-status").dataset.passkeys;
    closeEnrollment();
    showRecoveryCodes([]);
    unsay("mfa-message");
    renderPasskeys([]);
    delete $("passkey-list").dataset.state;
    input("passkey-name").value = "";
    unsay("passkey-message");
  } else if (event.type === "LOGOUT_PENDING") {
    setStatus("signed-out", `Signed out here, but the logout did not reach the server (${event.error.code}): it is sent again when this page next loads`);
  } else {
    setStatus("retrying", `Retrying: the auth server is unreachable (try ${event.attempt} failed with ${event.error.code}); still signed in`);
  }
});

/** The protected call, through the library's fetch: once a second while signed in. */
async function loadSessions() {
  if (loading) return;
  loading = true;
  try {
    const response = await auth.fetch(sessionsUrl);
    $("api-last").textContent = `GET /auth/sessions → ${response.status} at ${new Date().toLocaleTimeString()}`;
    if (response.status === 401) count("api-401");
    if (!response.ok) {
      count("api-failed");
      return;
    }
    count("api-ok");
    renderSessions(((await response.json()) as { sessions: Session[] }).sessions);
  } catch (error) {
    $("api-last").textContent = `GET /auth/sessions: ${error instanceof AuthError ? error.code : String(error)}`;
    count("api-failed");
  } finally {
    loading = false;
  }
}

function renderSessions(sessions: Session[]) {
  const rows = sessions.map((session) => {
    const row = document.createElement("tr");
    row.dataset.sessionId = session.session_id;
    for (const text of [session.session_id, time(session.created_at), time(session.last_used_at), session.user_agent ?? ""]) {
      row.insertCell().textContent = text;
    }
    const action = row.insertCell();
    if (session.current) {
      action.textContent = "this session";
    } else {
      const end = document.createElement("button");
      end.textContent = "End this other session";
      end.addEventListener("click", async () => {
        const response = await auth.fetch(`${sessionsUrl}/${encodeURIComponent(session.session_id)}`, { method: "DELETE" });
        $("api-last").textContent = `DELETE /auth/sessions/… → ${response.status}`;
        await loadSessions();
      });
      action.append(end);
    }
    return row;
  });
  $("sessions").replaceChildren(...rows);
}

// The countdown reads the claims every 100 ms; the library refreshes on its own.
setInterval(() => {
  const claims = auth.getClaims();
  $("countdown").textContent = claims ? `${Math.max(0, claims.exp - Date.now() / 1000).toFixed(1)} s` : "";
}, 100);

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  $("resend-verification").hidden = true;
  $("resend-message").textContent = "";
  const username = input("username").value;
  try {
    signedInAs = username;
    const result = await auth.login(username, input("password").value);
    input("password").value = "";
    if (result?.mfaRequired) showChallenge(result);
  } catch (error) {
    signedInAs = undefined;
    $("login-error").textContent = describe(error);
    // The right password, the address not verified yet: offer a new link.
    if (error instanceof AuthError && error.code === "email_not_verified") {
      unverified = username;
      $("resend-verification").hidden = false;
    }
  }
});

// The login's second step: the password was right, the account has a second factor. The
// form offers what the challenge's methods name: the app's code, a recovery code, a passkey.
function showChallenge(next: MfaChallenge | PendingMfaChallenge) {
  challenge = next;
  const offers = (method: string) => next.methods.includes(method);
  $("login-form").hidden = true;
  $("account-forms").hidden = true;
  $("login-mfa-form").hidden = false;
  $("login-mfa-error").textContent = "";
  $("login-mfa-codes").hidden = !offers("totp") && !offers("recovery_code");
  $("login-mfa-use-recovery").hidden = !(offers("totp") && offers("recovery_code"));
  $("login-mfa-passkey").hidden = !(offers("webauthn") && next.webauthn);
  useRecoveryCode(!offers("totp"));
  if (offers("totp")) input("login-mfa-code").focus();
}

function endChallenge() {
  challenge = undefined;
  $("login-mfa-form").hidden = true;
  input("login-mfa-code").value = input("login-mfa-recovery-code").value = "";
}

/** Switches the challenge form between the app's code and a recovery code. */
function useRecoveryCode(recovery: boolean) {
  $("login-mfa-form").dataset.mode = recovery ? "recovery" : "code";
  $("login-mfa-code-label").hidden = recovery;
  $("login-mfa-recovery-label").hidden = !recovery;
  $("login-mfa-use-recovery").textContent = recovery ? "Use a code from the app instead" : "Use a recovery code instead";
}

$("login-mfa-use-recovery").addEventListener("click", () => useRecoveryCode($("login-mfa-form").dataset.mode === "code"));

$("login-mfa-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!challenge) return;
  $("login-mfa-error").textContent = "";
  const factor: MfaFactor =
    $("login-mfa-form").dataset.mode === "recovery" ? { recoveryCode: input("login-mfa-recovery-code").value.trim() } : { code: input("login-mfa-code").value.trim() };
  try {
    // Signs in as login does: SIGNED_IN above ends the challenge.
    // A challenge after another provider has no token here: its cookie carries it.
    await auth.verifyMfa({ ...("mfaToken" in challenge && { mfaToken: challenge.mfaToken }), ...factor });
  } catch (error) {
    challengeFailed(error);
  }
});

$("login-mfa-passkey").addEventListener("click", async () => {
  if (!challenge) return;
  $("login-mfa-error").textContent = "";
  try {
    // The browser asks for one of the account's passkeys; the answer signs in as a code does.
    await auth.verifyMfaWithPasskey(challenge);
  } catch (error) {
    challengeFailed(error);
  }
});

/**
 * A refused answer to the challenge: invalid_code and a closed passkey prompt leave it
 * usable (up to five wrong answers); invalid_token means it is spent or expired: back to the
 * password.
 */
function challengeFailed(error: unknown) {
  if (error instanceof AuthError && error.code === "invalid_token") {
    cancelChallenge();
    $("login-error").textContent = `${describe(error)} (log in again)`;
  } else {
    $("login-mfa-error").textContent = describe(error);
  }
}

function cancelChallenge() {
  endChallenge();
  signedInAs = undefined;
  $("login-form").hidden = false;
  $("account-forms").hidden = false;
}
$("login-mfa-cancel").addEventListener("click", cancelChallenge);

// Two-factor settings, while signed in.
async function loadMfaStatus() {
  try {
    const status = (factors = await auth.mfaStatus());
    $("mfa-status").dataset.totp = status.totp ? "on" : "off";
    $("mfa-status").dataset.passkeys = String(status.passkeys);
    $("mfa-status").textContent = status.totp ? `TOTP is on; ${status.recoveryCodesLeft} recovery codes left.` : "TOTP is off.";
    $("mfa-enroll").hidden = status.totp;
    $("mfa-disable").hidden = $("mfa-regenerate").hidden = !status.totp;
  } catch (error) {
    say("mfa-message", "failed", describe(error));
  }
}

/** Runs a settings action, its error shown under the section (a cancelled step-up is one). */
async function mfaAction(action: () => Promise<string>) {
  unsay("mfa-message");
  try {
    say("mfa-message", "done", await action());
  } catch (error) {
    say("mfa-message", "failed", describe(error));
  }
  await loadMfaStatus();
}

/** The recovery codes, shown once (an empty list hides them). */
function showRecoveryCodes(codes: string[]) {
  $("recovery-codes").replaceChildren(
    ...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }),
  );
  $("recovery-codes-panel").hidden = codes.length === 0;
}

/** Hides the enrolment and takes its secret off the page. */
function closeEnrollment() {
  $("mfa-enrollment").hidden = true;
  $("mfa-secret").textContent = "";
  ($("mfa-qr") as HTMLImageElement).removeAttribute("src");
  input("mfa-code").value = "";
}

$("mfa-enroll").addEventListener("click", () =>
  mfaAction(async () => {
    showRecoveryCodes([]);
    const enrollment = await auth.enrollTotp();
    const qr = qrcode(0, "M");
    qr.addData(enrollment.otpauthUri);
    qr.make();
    ($("mfa-qr") as HTMLImageElement).src = qr.createDataURL(4);
    $("mfa-secret").textContent = enrollment.secret;
    $("mfa-enrollment").hidden = false;
    input("mfa-code").focus();
    return `Confirm within ${Math.round(enrollment.expiresIn / 60)} minutes with a code from the app.`;
  }),
);

$("mfa-confirm-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void mfaAction(async () => {
    const codes = await auth.confirmTotp(input("mfa-code").value.trim());
    closeEnrollment();
    showRecoveryCodes(codes);
    return "TOTP is on: the next login asks for a code.";
  });
});
$("mfa-enroll-cancel").addEventListener("click", closeEnrollment);

$("mfa-disable").addEventListener("click", () =>
  mfaAction(async () => {
    await auth.disableTotp();
    showRecoveryCodes([]);
    return "TOTP is off.";
  }),
);

$("mfa-regenerate").addEventListener("click", () =>
  mfaAction(async () => {
    showRecoveryCodes(await auth.regenerateRecoveryCodes());
    return "New recovery codes: the old ones no longer work.";
  }),
);

$("recovery-codes-done").addEventListener("click", () => showRecoveryCodes([]));

// Passkeys. Signing in with one asks for no username: the browser offers the passkeys it
// holds for this site and the server knows the user from the one chosen.
$("passkey-signin").addEventListener("click", async () => {
  $("login-error").textContent = "";
  try {
    await auth.signInWithPasskey();
  } catch (error) {
    // passkey_cancelled (the prompt closed), invalid_passkey (a passkey the server no longer
    // knows), passkeys_unsupported (an older browser): all shown where a login's errors are.
    $("login-error").textContent = describe(error);
  }
});

/** The signed-in user's passkeys, each with its remove button; `data-state="loaded"` once listed. */
async function loadPasskeys() {
  try {
    renderPasskeys(await auth.listPasskeys());
    $("passkey-list").dataset.state = "loaded";
  } catch (error) {
    say("passkey-message", "failed", describe(error));
  }
}

function renderPasskeys(passkeys: Passkey[]) {
  const items = passkeys.map((passkey) => {
    const item = document.createElement("li");
    item.dataset.id = passkey.id;
    const name = document.createElement("span");
    name.className = "passkey-name";
    name.textContent = passkey.name ?? "Unnamed passkey";
    const dates = ` added ${new Date(passkey.createdAt * 1000).toLocaleString()}, ${
      passkey.lastUsedAt ? `last used ${new Date(passkey.lastUsedAt * 1000).toLocaleString()}` : "never used to sign in"
    } `;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "passkey-delete";
    remove.textContent = "Delete";
    remove.addEventListener("click", () =>
      passkeyAction(async () => {
        await auth.deletePasskey(passkey.id);
        // The server forgets it; the authenticator keeps it until the user removes it there.
        return `Passkey "${name.textContent}" deleted: it no longer signs in (remove it from the device too).`;
      }),
    );
    item.append(name, dates, remove);
    return item;
  });
  $("passkey-list").replaceChildren(...items);
}

/** Runs a passkey action, its outcome shown under the section, then lists the passkeys (and the second factors) again. */
async function passkeyAction(action: () => Promise<string>) {
  unsay("passkey-message");
  try {
    say("passkey-message", "done", await action());
  } catch (error) {
    say("passkey-message", "failed", describe(error));
  }
  await Promise.all([loadPasskeys(), loadMfaStatus()]);
}

$("passkey-add-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void passkeyAction(async () => {
    // The browser's prompt creates it (a user with a second factor may be asked for it first).
    const passkey = await auth.registerPasskey(input("passkey-name").value.trim() || undefined);
    input("passkey-name").value = "";
    return `Passkey "${passkey.name ?? "Unnamed passkey"}" added: it signs you in without a password.`;
  });
});

/**
 * The library's `onStepUpRequired`: a call the server wants a recent second factor for
 * opens the in-page prompt, offering the factors the user has: what the user types (six
 * digits are the app's code, anything else a recovery code), or "Use a passkey" (the
 * library then asks the browser for one of the user's passkeys). The answer goes back to
 * the library, which steps up and sends the call again. Cancel answers `null`, and the call
 * fails with `step_up_required`. Until the factors are read, the codes are offered.
 */
function askForSecondFactor(): Promise<StepUpFactor | null> {
  answerStepUp?.(null);
  const codes = !factors || factors.methods.some((method) => method === "totp" || method === "recovery_code");
  $("step-up-form").hidden = false;
  $("step-up-codes").hidden = !codes;
  $("step-up-passkey").hidden = !factors?.passkeys;
  input("step-up-code").value = "";
  if (codes) input("step-up-code").focus();
  return new Promise((resolve) => {
    answerStepUp = (factor) => {
      answerStepUp = undefined;
      $("step-up-form").hidden = true;
      resolve(factor);
    };
  });
}

$("step-up-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const typed = input("step-up-code").value.trim();
  answerStepUp?.(/^\d{6}$/.test(typed) ? { code: typed } : { recoveryCode: typed });
});
$("step-up-passkey").addEventListener("click", () => answerStepUp?.({ passkey: true }));
$("step-up-cancel").addEventListener("click", () => answerStepUp?.(null));

// Sign-up: the server answers the same for a new and a taken address, so the page does too.
$("signup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = input("signup-username").value;
  $("signup-message").textContent = "";
  try {
    await auth.signUp(username, input("signup-password").value);
    input("signup-password").value = "";
    input("username").value = username;
    unverified = username;
    $("resend-verification").hidden = false;
    say("signup-message", "done", `Check your e-mail: a link to verify ${username} is on its way. Open it, then log in.`);
  } catch (error) {
    say("signup-message", "failed", describe(error));
  }
});

$("resend-verification").addEventListener("click", async () => {
  try {
    await auth.resendVerification(unverified);
    say("resend-message", "done", `If ${unverified} is waiting for verification, a new link is on its way (the older ones no longer work).`);
  } catch (error) {
    say("resend-message", "failed", describe(error));
  }
});

$("forgot-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = input("forgot-username").value;
  $("forgot-message").textContent = "";
  try {
    await auth.requestPasswordReset(username);
    say("forgot-message", "done", `Check your e-mail: if ${username} has an account, a link to reset its password is on its way.`);
  } catch (error) {
    say("forgot-message", "failed", describe(error));
  }
});

// The e-mail links' landing pages. Their token is in the fragment: the browser sends it to
// no server and puts it in no Referer. It is read once and taken out of the address bar and
// the history at once; the page then POSTs it.
const landing = location.pathname;
const linkToken = new URLSearchParams(location.hash.slice(1)).get("token");
if (landing === "/verify-email" || landing === "/reset-password") history.replaceState(null, "", landing);

if (landing === "/verify-email") {
  $("verify-section").hidden = false;
  if (!linkToken) {
    $("verify-form").hidden = true;
    say("verify-message", "failed", "This link has no token: open the link from the e-mail again, or ask for a new one.");
  }
  // The password proves the address's owner chose it; verifying signs nobody in.
  $("verify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await auth.verifyEmail(linkToken ?? "", ($("verify-password") as HTMLInputElement).value);
      $("verify-form").hidden = true;
      say("verify-message", "done", "E-mail address verified, now log in.");
    } catch (error: unknown) {
      say(
        "verify-message",
        "failed",
        error instanceof AuthError && error.code === "invalid_token"
          ? `${describe(error)} (the link was used, has expired or a newer one replaced it: sign in to get a new one)`
          : describe(error),
      );
    }
  });
}

if (landing === "/reset-password") {
  $("reset-section").hidden = false;
  if (!linkToken) {
    $("reset-form").hidden = true;
    say("reset-message", "failed", "This link has no token: open the link from the e-mail again, or ask for a new one.");
  }
  $("reset-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("reset-message").textContent = "";
    try {
      await auth.resetPassword(linkToken!, input("new-password").value);
      input("new-password").value = "";
      $("reset-form").hidden = true;
      say("reset-message", "done", "Password changed, and every session of the account ended: now log in with the new password.");
    } catch (error) {
      // weak_password: the form stays for another try; invalid_token: a new link is needed.
      say(
        "reset-message",
        "failed",
        error instanceof AuthError && error.code === "invalid_token"
          ? `${describe(error)} (the link was used, has expired or a newer one replaced it: ask for a new one below)`
          : describe(error),
      );
    }
  });
}
$("logout").addEventListener("click", () => auth.logout().catch((error: unknown) => ($("login-error").textContent = String(error))));
$("logout-everywhere").addEventListener("click", () =>
  auth.logout({ everywhere: true }).catch((error: unknown) => ($("login-error").textContent = String(error))),
);

// Sign-in through another provider is a plain navigation: the federation function sends the
// browser to the provider and back here with the refresh cookie set (picked up below), or
// with ?error=<code>.
for (const provider of config.oauth) {
  const link = document.createElement("a");
  link.id = `oauth-signin-${provider.id}`;
  link.className = "button";
  link.href = `${config.baseUrl}${provider.start}?return_to=${encodeURIComponent(`${location.origin}/`)}`;
  link.textContent = `Sign in with ${provider.name}`;
  $("oauth-providers").append(link, " ");
}
const returned = new URLSearchParams(location.search);
if (returned.has("error")) {
  $("login-error").textContent = `Sign-in through the provider failed: ${returned.get("error")}`;
}
// The provider signed the user in, and the account has a second factor: the challenge is
// in an HttpOnly cookie, so it has no token here; pendingMfa describes it (the passkey
// request too), and the answers send none.
if (returned.has("mfa_required")) {
  try {
    showChallenge(await auth.pendingMfa());
  } catch (error) {
    $("login-error").textContent = describe(error);
  }
}
if (location.search) history.replaceState(null, "", location.pathname);

input("username").value = config.username;
// A session from before this page (a reload, another tab) is picked up through the refresh cookie.
if ((await auth.getAccessToken().catch(() => null)) === null && $("status").dataset.state === "unknown") {
  setStatus("signed-out", "Signed out");
}
