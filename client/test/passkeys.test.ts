// Passkeys (issue 21, WebAuthn) against a fake fetch and a fake browser WebAuthn
// (`navigator.credentials` and `PublicKeyCredential`'s JSON helpers): registering, listing
// and removing a passkey, signing in with one, answering login's challenge with one, and
// stepping up with one.
// Each request is checked as sent (method, path, body, bearer), and each prompt as asked.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { AuthError, type AuthClientOptions, type MfaChallenge, type StepUpFactor } from "../src/index.js";
import { API, type Handler, fakeFetch, jwt, json, tokenAnswer, noContent, refusal, client, closeClients, fakeStorage } from "./fakes.js";


/** A passkey sign-in's amr (a device-bound passkey), and after a password and a passkey. */
const PASSKEY_AMR = ["hwk", "user", "mfa"];
const PASSWORD_PASSKEY_AMR = ["pwd", "hwk", "user", "mfa"];
const PASSKEY_TOKEN = "Pk7yq2Qm8n1pZr6sT0uWxA4bC7dE9gH5jK2lM8nP0qR";
const MFA_TOKEN = "Vf3yq2Qm8n1pZr6sT0uWxA4bC7dE9gH5jK2lM8nP0qR";
const CREDENTIAL_ID = "AYxq3hZ8Wc-0k_r2bQ";

/** register/start's options as webauthn-rs writes them: base64url strings where the browser wants buffers. */
const CREATION_OPTIONS = {
  publicKey: {
    rp: { id: "example.com", name: "Example" },
    user: { id: "dXNlci0x", name: "alice@example.com", displayName: "alice@example.com" },
    challenge: "c2lnbi10aGlzLWNoYWxsZW5nZQ",
    pubKeyCredParams: [{ type: "public-key", alg: -7 }],
    timeout: 300000,
    authenticatorSelection: { residentKey: "required", requireResidentKey: true, userVerification: "required" },
    attestation: "none",
  },
};
/** A discoverable sign-in's request: no allowed credentials, the browser offers the site's passkeys. */
const REQUEST_OPTIONS = {
  publicKey: { challenge: "YW5vdGhlci1jaGFsbGVuZ2U", timeout: 300000, rpId: "example.com", allowCredentials: [], userVerification: "required" },
};
/** A password login's challenge for a user with a passkey: the request names the user's passkeys. */
const CHALLENGE_OPTIONS = {
  publicKey: { ...REQUEST_OPTIONS.publicKey, challenge: "bWZhLWNoYWxsZW5nZQ", allowCredentials: [{ type: "public-key", id: CREDENTIAL_ID }] },
};

/** step-up/start's request: like the challenge's, it names the user's passkeys. */
const STEP_UP_OPTIONS = {
  publicKey: { ...REQUEST_OPTIONS.publicKey, challenge: "c3RlcC11cC1jaGFsbGVuZ2U", allowCredentials: [{ type: "public-key", id: CREDENTIAL_ID }] },
};
const STEP_UP_TOKEN = "Su4yq2Qm8n1pZr6sT0uWxA4bC7dE9gH5jK2lM8nP0qR";

/** What `toJSON()` gives for a new passkey and for an assertion (opaque to the client: sent as it is). */
const REGISTRATION_JSON = {
  id: CREDENTIAL_ID,
  rawId: CREDENTIAL_ID,
  type: "public-key",
  response: { clientDataJSON: "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0", attestationObject: "o2NmbXRkbm9uZQ", transports: ["internal"] },
  clientExtensionResults: { credProps: { rk: true } },
  authenticatorAttachment: "platform",
};
const ASSERTION_JSON = {
  id: CREDENTIAL_ID,
  rawId: CREDENTIAL_ID,
  type: "public-key",
  response: { clientDataJSON: "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0", authenticatorData: "SZYN5YgOjGh0NBcP", signature: "MEUCIQ", userHandle: "dXNlci0x" },
  clientExtensionResults: {},
  authenticatorAttachment: "platform",
};

/** The parsers' results stand for the buffers a browser makes: they keep the JSON they were given, to be checked. */
const parsed = (kind: "creation" | "request", json: unknown) => ({ parsed: kind, json });

type Prompt = (options: unknown) => Promise<unknown>;

/** The globals the fake replaces, as they were (Node 20 has neither; a later Node has a `navigator`). */
const originals = Object.fromEntries(["navigator", "PublicKeyCredential"].map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]));

function setGlobal(name: string, value: unknown) {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
}

/**
 * A browser's WebAuthn: `PublicKeyCredential` with its JSON parsers and credentials with
 * `toJSON()`, and `navigator.credentials`, whose `create` and `get` record the options they
 * get and answer as `create`/`get` say (by default a new passkey, an assertion). `without`
 * leaves members out, as an older browser would.
 */
function fakeWebAuthn({ create, get, without = [] }: { create?: Prompt; get?: Prompt; without?: string[] } = {}) {
  const asked = { create: [] as unknown[], get: [] as unknown[] };
  class FakeCredential {
    constructor(private readonly json: unknown) {}
    toJSON() {
      return this.json;
    }
    static parseCreationOptionsFromJSON(json: unknown) {
      return parsed("creation", json);
    }
    static parseRequestOptionsFromJSON(json: unknown) {
      return parsed("request", json);
    }
  }
  for (const member of without) {
    if (member === "toJSON") delete (FakeCredential.prototype as Partial<FakeCredential>).toJSON;
    else delete (FakeCredential as unknown as Record<string, unknown>)[member];
  }
  const credentials = {
    create: async (options: unknown) => (asked.create.push(options), create ? create(options) : new FakeCredential(REGISTRATION_JSON)),
    get: async (options: unknown) => (asked.get.push(options), get ? get(options) : new FakeCredential(ASSERTION_JSON)),
  };
  setGlobal("PublicKeyCredential", without.includes("PublicKeyCredential") ? undefined : FakeCredential);
  setGlobal("navigator", { credentials });
  return { asked, credential: (json: unknown) => new FakeCredential(json) };
}

afterEach(() => {
  closeClients();
  for (const [name, descriptor] of Object.entries(originals)) {
    if (descriptor) Object.defineProperty(globalThis, name, descriptor);
    else delete (globalThis as Record<string, unknown>)[name];
  }
});

/** A signed-in client whose account function answers `answer` (login and refresh answer tokens 0, 1, ...). */
async function signedIn(answer: Handler, options: Partial<AuthClientOptions> = {}) {
  let refreshes = 0;
  const server = fakeFetch((call) => {
    if (call.path === "/auth/login") return tokenAnswer(0);
    if (call.path === "/auth/refresh") return tokenAnswer(++refreshes, ["pwd", "otp", "mfa"]);
    return answer(call);
  });
  const tab = client(server.fetch, options);
  await tab.auth.login("alice@example.com", "pw");
  server.calls.length = 0;
  return { ...tab, server };
}

/** The account function's passkey routes, as the contract has them. */
const accountPasskeys: Handler = ({ path, method }) => {
  if (path === "/auth/passkeys/register/start") return json(200, { passkey_token: PASSKEY_TOKEN, options: CREATION_OPTIONS, expires_in: 300 });
  if (path === "/auth/passkeys/register/finish") return json(201, { id: CREDENTIAL_ID, name: "Laptop", created_at: 1_760_000_000 });
  throw new Error(`unexpected ${method} ${path}`);
};

/** The login function's passkey sign-in: a start, and a finish that signs in (or refuses with `finish`). */
function passkeyLogin(finish: () => Response = () => tokenAnswer(0, PASSKEY_AMR), options: unknown = REQUEST_OPTIONS): Handler {
  return ({ path }) => {
    if (path === "/auth/passkeys/login/start") return json(200, { passkey_token: PASSKEY_TOKEN, options, expires_in: 300 });
    if (path === "/auth/passkeys/login/finish") return finish();
    if (path === "/auth/logout") return noContent();
    throw new Error(`unexpected ${path}`);
  };
}

const rejection = async (promise: Promise<unknown>) =>
  promise.then(
    () => assert.fail("it resolved"),
    (error: unknown) => {
      assert.ok(error instanceof AuthError, String(error));
      return error;
    },
  );

// --- Registering, listing, removing ---------------------------------------------------------

test("registerPasskey: POST register/start with the bearer and no body, the browser's create with options.publicKey parsed, POST register/finish {passkey_token, credential: toJSON(), name}; resolves {id, name, createdAt}, no event", async () => {
  const browser = fakeWebAuthn();
  const { auth, server, types } = await signedIn(accountPasskeys);
  assert.deepEqual(await auth.registerPasskey("Laptop"), { id: CREDENTIAL_ID, name: "Laptop", createdAt: 1_760_000_000 });
  const bearer = `Bearer ${jwt(0)}`;
  assert.deepEqual(server.calls, [
    { path: "/auth/passkeys/register/start", method: "POST", bearer, contentType: null, credentials: "same-origin", body: undefined },
    {
      path: "/auth/passkeys/register/finish",
      method: "POST",
      bearer,
      contentType: "application/json",
      credentials: "same-origin",
      body: { passkey_token: PASSKEY_TOKEN, credential: REGISTRATION_JSON, name: "Laptop" },
    },
  ]);
  assert.deepEqual(browser.asked, { create: [{ publicKey: parsed("creation", CREATION_OPTIONS.publicKey) }], get: [] });
  assert.deepEqual(types(), ["SIGNED_IN"], "no event");
});

test("registerPasskey without a name sends no name member, and a passkey the server gives no name comes back with name null", async () => {
  fakeWebAuthn();
  const { auth, server } = await signedIn((call) => (call.path.endsWith("/finish") ? json(201, { id: CREDENTIAL_ID, created_at: 1_760_000_000 }) : accountPasskeys(call)));
  assert.deepEqual(await auth.registerPasskey(), { id: CREDENTIAL_ID, name: null, createdAt: 1_760_000_000 });
  assert.deepEqual(server.calls[1]!.body, { passkey_token: PASSKEY_TOKEN, credential: REGISTRATION_JSON });
});

test("registerPasskey: a 403 step_up_required on register/start asks onStepUpRequired, steps up, refreshes and starts again with the new token; the browser is asked once", async () => {
  const browser = fakeWebAuthn();
  let steppedUp = false;
  let asked = 0;
  const { auth, server } = await signedIn(
    (call) => {
      if (call.path === "/auth/mfa/step-up") {
        steppedUp = true;
        return noContent();
      }
      return steppedUp ? accountPasskeys(call) : refusal(403, "step_up_required");
    },
    { onStepUpRequired: async () => (asked++, { code: "123456" }) },
  );
  assert.equal((await auth.registerPasskey("Laptop")).id, CREDENTIAL_ID);
  assert.equal(asked, 1);
  const stepped = `Bearer ${jwt(1, ["pwd", "otp", "mfa"])}`;
  assert.deepEqual(
    server.calls.map((c) => [c.method, c.path, c.bearer, c.body]),
    [
      ["POST", "/auth/passkeys/register/start", `Bearer ${jwt(0)}`, undefined],
      ["POST", "/auth/mfa/step-up", `Bearer ${jwt(0)}`, { code: "123456" }],
      ["POST", "/auth/refresh", null, undefined],
      ["POST", "/auth/passkeys/register/start", stepped, undefined],
      ["POST", "/auth/passkeys/register/finish", stepped, { passkey_token: PASSKEY_TOKEN, credential: REGISTRATION_JSON, name: "Laptop" }],
    ],
  );
  assert.equal(browser.asked.create.length, 1, "one prompt, after the step-up");
});

test("registerPasskey: the browser's errors are AuthErrors (closed prompt: passkey_cancelled, a passkey already there: passkey_exists, others: passkey_failed with the cause), and nothing is finished", async () => {
  const failures: [unknown, string][] = [
    [new DOMException("The operation either timed out or was not allowed.", "NotAllowedError"), "passkey_cancelled"],
    [new DOMException("The user attempted to register an authenticator that contains one of the credentials already registered with the relying party.", "InvalidStateError"), "passkey_exists"],
    [new DOMException("The operation is insecure.", "SecurityError"), "passkey_failed"],
    [null, "passkey_cancelled"],
  ];
  for (const [failure, code] of failures) {
    fakeWebAuthn({ create: async () => (failure === null ? null : Promise.reject(failure)) });
    const { auth, server } = await signedIn(accountPasskeys);
    const error = await rejection(auth.registerPasskey("Laptop"));
    assert.equal(error.code, code, String(failure));
    if (failure) assert.deepEqual([error.cause, error.message], [failure, (failure as DOMException).message]);
    assert.deepEqual(server.paths(), ["POST /auth/passkeys/register/start"], "no finish");
  }
});

test("registerPasskey: options the browser's parser refuses are passkey_failed, and no prompt opens", async () => {
  const browser = fakeWebAuthn();
  const parserError = new TypeError("Failed to execute 'parseCreationOptionsFromJSON'");
  (globalThis as unknown as { PublicKeyCredential: { parseCreationOptionsFromJSON: () => never } }).PublicKeyCredential.parseCreationOptionsFromJSON = () => {
    throw parserError;
  };
  const { auth, server } = await signedIn(accountPasskeys);
  const error = await rejection(auth.registerPasskey());
  assert.deepEqual([error.code, error.cause], ["passkey_failed", parserError]);
  assert.deepEqual(browser.asked.create, []);
  assert.deepEqual(server.paths(), ["POST /auth/passkeys/register/start"]);
});

test("registerPasskey: register/finish refused (400 invalid_passkey: the ceremony failed on the server) is thrown with its code, sent once", async () => {
  fakeWebAuthn();
  const { auth, server, types } = await signedIn((call) => (call.path.endsWith("/finish") ? refusal(400, "invalid_passkey") : accountPasskeys(call)));
  const error = await rejection(auth.registerPasskey("Laptop"));
  assert.deepEqual([error.code, error.status, error.message], ["invalid_passkey", 400, "message for invalid_passkey"]);
  assert.deepEqual(server.paths(), ["POST /auth/passkeys/register/start", "POST /auth/passkeys/register/finish"]);
  assert.deepEqual(types(), ["SIGNED_IN"]);
});

test("listPasskeys: GET /auth/passkeys with the bearer; resolves to the passkeys in the page's terms", async () => {
  const { auth, server } = await signedIn(() =>
    json(200, {
      passkeys: [
        { id: CREDENTIAL_ID, name: "Laptop", created_at: 1_760_000_000, last_used_at: 1_760_000_500 },
        { id: "BZyq3hZ8Wc", name: null, created_at: 1_760_000_100, last_used_at: null },
      ],
    }),
  );
  assert.deepEqual(await auth.listPasskeys(), [
    { id: CREDENTIAL_ID, name: "Laptop", createdAt: 1_760_000_000, lastUsedAt: 1_760_000_500 },
    { id: "BZyq3hZ8Wc", name: null, createdAt: 1_760_000_100, lastUsedAt: null },
  ]);
  assert.deepEqual(server.calls, [{ path: "/auth/passkeys", method: "GET", bearer: `Bearer ${jwt(0)}`, contentType: null, credentials: "same-origin", body: undefined }]);
});

test("listPasskeys works without WebAuthn, and a stale token (401 invalid_token) is refreshed once and the call sent again", async () => {
  const { auth, server } = await signedIn(({ bearer }) => (bearer === `Bearer ${jwt(0)}` ? refusal(401, "invalid_token") : json(200, { passkeys: [] })));
  assert.deepEqual(await auth.listPasskeys(), []);
  assert.deepEqual(server.paths(), ["GET /auth/passkeys", "POST /auth/refresh", "GET /auth/passkeys"]);
});

test("deletePasskey: DELETE /auth/passkeys/{id} (the id encoded) with the bearer, 204 resolves; 404 not_found is thrown", async () => {
  const { auth, server } = await signedIn(({ path }) => (path === `/auth/passkeys/${CREDENTIAL_ID}` ? noContent() : refusal(404, "not_found")));
  assert.equal(await auth.deletePasskey(CREDENTIAL_ID), undefined);
  assert.deepEqual(server.calls[0], { path: `/auth/passkeys/${CREDENTIAL_ID}`, method: "DELETE", bearer: `Bearer ${jwt(0)}`, contentType: null, credentials: "same-origin", body: undefined });
  const error = await rejection(auth.deletePasskey("someone/else's"));
  assert.deepEqual([error.code, error.status], ["not_found", 404]);
  assert.equal(server.calls[1]!.path, "/auth/passkeys/someone%2Felse's", "one path segment");
});

// --- Signing in with a passkey --------------------------------------------------------------

test("signInWithPasskey: POST login/start (no bearer, no body), the browser's get with options.publicKey parsed, POST login/finish {passkey_token, credential: toJSON()}; signed in as login signs in (SIGNED_IN, the token as it came, amr)", async () => {
  const browser = fakeWebAuthn();
  const server = fakeFetch(passkeyLogin());
  const { auth, events } = client(server.fetch);
  const claims = await auth.signInWithPasskey();
  assert.deepEqual(server.calls, [
    { path: "/auth/passkeys/login/start", method: "POST", bearer: null, contentType: null, credentials: "include", body: undefined },
    {
      path: "/auth/passkeys/login/finish",
      method: "POST",
      bearer: null,
      contentType: "application/json",
      credentials: "include",
      body: { passkey_token: PASSKEY_TOKEN, credential: ASSERTION_JSON },
    },
  ]);
  assert.deepEqual(browser.asked, { create: [], get: [{ publicKey: parsed("request", REQUEST_OPTIONS.publicKey) }] }, "no mediation unless the server asks");
  assert.deepEqual(claims?.amr, PASSKEY_AMR);
  assert.deepEqual(
    events.map((e) => [e.type, "claims" in e ? e.claims?.sub : undefined]),
    [["SIGNED_IN", "user-1"]],
  );
  assert.equal(await auth.getAccessToken(), jwt(0, PASSKEY_AMR));
  assert.equal(server.calls.length, 2, "no refresh");
});

test("signInWithPasskey passes the mediation the server's options ask for", async () => {
  const browser = fakeWebAuthn();
  const { auth } = client(fakeFetch(passkeyLogin(undefined, { ...REQUEST_OPTIONS, mediation: "conditional" })).fetch);
  await auth.signInWithPasskey();
  assert.deepEqual(browser.asked.get, [{ publicKey: parsed("request", REQUEST_OPTIONS.publicKey), mediation: "conditional" }]);
});

test("signInWithPasskey's sign-in reaches the other tabs, as login's does", async () => {
  fakeWebAuthn();
  const channel = `test-${Math.random()}`;
  const server = fakeFetch(passkeyLogin());
  const first = client(server.fetch, { channel });
  const second = client(server.fetch, { channel });
  await first.auth.signInWithPasskey();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(second.types(), ["SIGNED_IN"]);
  assert.equal(await second.auth.getAccessToken(), await first.auth.getAccessToken());
  assert.equal(server.calls.length, 2, "the other tab sent nothing");
});

test("signInWithPasskey: a passkey the server refuses (401 invalid_passkey) is thrown and changes nothing: no event, no token, no refresh", async () => {
  fakeWebAuthn();
  const server = fakeFetch(passkeyLogin(() => refusal(401, "invalid_passkey")));
  const { auth, events } = client(server.fetch);
  const error = await rejection(auth.signInWithPasskey());
  assert.deepEqual([error.code, error.status, error.message], ["invalid_passkey", 401, "message for invalid_passkey"]);
  assert.deepEqual(events, []);
  assert.equal(auth.getClaims(), null);
  assert.deepEqual(server.paths(), ["POST /auth/passkeys/login/start", "POST /auth/passkeys/login/finish"]);
});

test("signInWithPasskey: the prompt closed is passkey_cancelled and nothing is finished; a refused start (404: passkeys off) is thrown before any prompt", async () => {
  const cancelled = fakeWebAuthn({ get: () => Promise.reject(new DOMException("The operation either timed out or was not allowed.", "NotAllowedError")) });
  const server = fakeFetch(passkeyLogin());
  const { auth, events } = client(server.fetch);
  assert.equal((await rejection(auth.signInWithPasskey())).code, "passkey_cancelled");
  assert.deepEqual(server.paths(), ["POST /auth/passkeys/login/start"]);
  assert.equal(cancelled.asked.get.length, 1);

  const browser = fakeWebAuthn();
  const off = client(fakeFetch(() => refusal(404, "not_found")).fetch);
  assert.equal((await rejection(off.auth.signInWithPasskey())).code, "not_found");
  assert.deepEqual(browser.asked.get, []);
  assert.deepEqual(events, []);
});

test("signInWithPasskey sends a logout left pending first, as login does, and its sign-in removes the marker", async () => {
  fakeWebAuthn();
  const storage = fakeStorage();
  storage.set(`auth-client:logout-pending:${API}`, "everywhere");
  const server = fakeFetch(passkeyLogin());
  const { auth, types } = client(server.fetch);
  await auth.signInWithPasskey();
  assert.deepEqual(
    server.calls.map((c) => [c.path, c.body]),
    [
      ["/auth/logout", { everywhere: true }],
      ["/auth/passkeys/login/start", undefined],
      ["/auth/passkeys/login/finish", { passkey_token: PASSKEY_TOKEN, credential: ASSERTION_JSON }],
    ],
  );
  assert.equal(storage.size, 0);
  assert.deepEqual(types(), ["SIGNED_IN"]);
});

// --- Login's challenge answered with a passkey ----------------------------------------------

/** A login function for a user with a passkey: the password gets a challenge carrying the request for it. */
const passkeyChallenge: Handler = ({ path, body }) => {
  if (path === "/auth/login") {
    return json(200, { mfa_required: true, mfa_token: MFA_TOKEN, methods: ["totp", "recovery_code", "webauthn"], webauthn: CHALLENGE_OPTIONS, expires_in: 300 });
  }
  if (path === "/auth/login/mfa") return (body as { webauthn?: unknown }).webauthn ? tokenAnswer(0, PASSWORD_PASSKEY_AMR) : refusal(400, "invalid_request");
  throw new Error(`unexpected ${path}`);
};

test("login's challenge carries the passkey request; verifyMfaWithPasskey asks the browser with it and POSTs {mfa_token, webauthn: toJSON()} to /auth/login/mfa, then signs in", async () => {
  const browser = fakeWebAuthn();
  const server = fakeFetch(passkeyChallenge);
  const { auth, types } = client(server.fetch);
  const challenge = (await auth.login("alice@example.com", "pw")) as MfaChallenge;
  assert.deepEqual(challenge, { mfaRequired: true, mfaToken: MFA_TOKEN, methods: ["totp", "recovery_code", "webauthn"], expiresIn: 300, webauthn: CHALLENGE_OPTIONS });
  assert.deepEqual(types(), [], "the challenge signs nobody in");

  const claims = await auth.verifyMfaWithPasskey(challenge);
  assert.deepEqual(browser.asked.get, [{ publicKey: parsed("request", CHALLENGE_OPTIONS.publicKey) }]);
  assert.deepEqual(server.calls[1], {
    path: "/auth/login/mfa",
    method: "POST",
    bearer: null,
    contentType: "application/json",
    credentials: "include",
    body: { mfa_token: MFA_TOKEN, webauthn: ASSERTION_JSON },
  });
  assert.deepEqual(claims?.amr, PASSWORD_PASSKEY_AMR);
  assert.deepEqual(types(), ["SIGNED_IN"]);
  assert.equal(await auth.getAccessToken(), jwt(0, PASSWORD_PASSKEY_AMR));
});

test("verifyMfaWithPasskey: a challenge without a passkey request is invalid_request, a closed prompt passkey_cancelled; neither sends anything", async () => {
  const browser = fakeWebAuthn({ get: async () => null });
  const server = fakeFetch(passkeyChallenge);
  const { auth, types } = client(server.fetch);
  const totpOnly: MfaChallenge = { mfaRequired: true, mfaToken: MFA_TOKEN, methods: ["totp", "recovery_code"], expiresIn: 300 };
  assert.equal((await rejection(auth.verifyMfaWithPasskey(totpOnly))).code, "invalid_request");
  assert.deepEqual(browser.asked.get, [], "no prompt");
  const challenge = { ...totpOnly, webauthn: CHALLENGE_OPTIONS };
  assert.equal((await rejection(auth.verifyMfaWithPasskey(challenge))).code, "passkey_cancelled");
  assert.deepEqual(server.calls, []);
  assert.deepEqual(types(), []);
});

test("pendingMfa after a provider's redirect: POSTs /auth/login/mfa/options with the cookies, and verifyMfaWithPasskey answers that challenge without an mfa_token; no challenge is invalid_token", async () => {
  fakeWebAuthn();
  let pending = true;
  const server = fakeFetch(({ path, body }) => {
    if (path === "/auth/login/mfa/options") {
      return pending ? json(200, { mfa_required: true, methods: ["webauthn"], webauthn: CHALLENGE_OPTIONS, expires_in: 280 }) : refusal(401, "invalid_token");
    }
    if (path === "/auth/login/mfa") {
      pending = false;
      return "mfa_token" in (body as object) ? refusal(400, "invalid_request") : tokenAnswer(0, PASSWORD_PASSKEY_AMR);
    }
    throw new Error(`unexpected ${path}`);
  });
  const { auth, types } = client(server.fetch);
  const challenge = await auth.pendingMfa();
  assert.deepEqual(challenge, { mfaRequired: true, methods: ["webauthn"], expiresIn: 280, webauthn: CHALLENGE_OPTIONS });
  assert.deepEqual(
    [server.calls[0]!.path, server.calls[0]!.method, server.calls[0]!.credentials, server.calls[0]!.body],
    ["/auth/login/mfa/options", "POST", "include", undefined],
  );
  assert.deepEqual(types(), [], "describing it signs nobody in");
  const claims = await auth.verifyMfaWithPasskey(challenge);
  assert.deepEqual(server.calls[1]!.body, { webauthn: ASSERTION_JSON }, "the cookie carries the challenge");
  assert.deepEqual(claims?.amr, PASSWORD_PASSKEY_AMR);
  assert.deepEqual(types(), ["SIGNED_IN"]);
  assert.equal((await rejection(auth.pendingMfa())).code, "invalid_token");
});

// --- Step-up with a passkey ------------------------------------------------------------------

/**
 * An account function that asks for a recent second factor and takes a passkey for it:
 * step-up/start answers the request for the user's passkeys under a passkey_token, and the
 * step-up takes that token with an assertion (`finish` answers it: 204 by default); then
 * deleting the passkey passes. A step-up refused leaves the session as it was.
 */
function passkeyStepUpServer(finish: () => Response = noContent): Handler {
  let steppedUp = false;
  return ({ path, body }) => {
    if (path === "/auth/mfa/step-up/start") return json(200, { passkey_token: STEP_UP_TOKEN, options: STEP_UP_OPTIONS, expires_in: 300 });
    if (path === "/auth/mfa/step-up") {
      const { passkey_token, webauthn } = body as { passkey_token?: string; webauthn?: unknown };
      if (passkey_token !== STEP_UP_TOKEN || !webauthn) return refusal(400, "invalid_request");
      const answer = finish();
      steppedUp = answer.ok;
      return answer;
    }
    if (!steppedUp) return refusal(403, "step_up_required");
    if (path === `/auth/passkeys/${CREDENTIAL_ID}`) return noContent();
    throw new Error(`unexpected ${path}`);
  };
}

/** A page that answers every step-up prompt with its passkey, counting the prompts. */
function passkeyPrompt() {
  const prompt = { asked: 0, onStepUpRequired: async (): Promise<StepUpFactor | null> => (prompt.asked++, { passkey: true }) };
  return prompt;
}

test("stepUp({ passkey: true }): POST mfa/step-up/start with the bearer and no body, the browser's get with its options.publicKey parsed, POST mfa/step-up {passkey_token, webauthn: toJSON()} with the bearer; resolves, nothing refreshed, no event", async () => {
  const browser = fakeWebAuthn();
  const { auth, server, types } = await signedIn(passkeyStepUpServer());
  assert.equal(await auth.stepUp({ passkey: true }), undefined);
  const bearer = `Bearer ${jwt(0)}`;
  assert.deepEqual(server.calls, [
    { path: "/auth/mfa/step-up/start", method: "POST", bearer, contentType: null, credentials: "same-origin", body: undefined },
    {
      path: "/auth/mfa/step-up",
      method: "POST",
      bearer,
      contentType: "application/json",
      credentials: "same-origin",
      body: { passkey_token: STEP_UP_TOKEN, webauthn: ASSERTION_JSON },
    },
  ]);
  assert.deepEqual(browser.asked, { create: [], get: [{ publicKey: parsed("request", STEP_UP_OPTIONS.publicKey) }] });
  assert.deepEqual(types(), ["SIGNED_IN"], "as with a code, the next refresh carries the step-up");
});

test("403 step_up_required with onStepUpRequired answering { passkey: true }: step-up/start, the browser's get, the step-up, a refresh, and the call once more with the new token; one prompt, one assertion", async () => {
  const browser = fakeWebAuthn();
  const prompt = passkeyPrompt();
  const { auth, server, types } = await signedIn(passkeyStepUpServer(), { onStepUpRequired: prompt.onStepUpRequired });
  assert.equal(await auth.deletePasskey(CREDENTIAL_ID), undefined);
  assert.equal(prompt.asked, 1);
  assert.equal(browser.asked.get.length, 1);
  const stepped = `Bearer ${jwt(1, ["pwd", "otp", "mfa"])}`;
  assert.deepEqual(
    server.calls.map((c) => [c.method, c.path, c.bearer, c.body]),
    [
      ["DELETE", `/auth/passkeys/${CREDENTIAL_ID}`, `Bearer ${jwt(0)}`, undefined],
      ["POST", "/auth/mfa/step-up/start", `Bearer ${jwt(0)}`, undefined],
      ["POST", "/auth/mfa/step-up", `Bearer ${jwt(0)}`, { passkey_token: STEP_UP_TOKEN, webauthn: ASSERTION_JSON }],
      ["POST", "/auth/refresh", null, undefined],
      ["DELETE", `/auth/passkeys/${CREDENTIAL_ID}`, stepped, undefined],
    ],
  );
  assert.deepEqual(types(), ["SIGNED_IN", "TOKEN_REFRESHED"]);
});

test("a passkey step-up refused (401 invalid_passkey: its passkey_token is used up) is thrown: not sent again with a refreshed token, nothing refreshed, the call not sent again", async () => {
  fakeWebAuthn();
  const prompt = passkeyPrompt();
  const { auth, server, types } = await signedIn(passkeyStepUpServer(() => refusal(401, "invalid_passkey")), { onStepUpRequired: prompt.onStepUpRequired });
  const error = await rejection(auth.deletePasskey(CREDENTIAL_ID));
  assert.deepEqual([error.code, error.status], ["invalid_passkey", 401]);
  assert.deepEqual(server.paths(), [`DELETE /auth/passkeys/${CREDENTIAL_ID}`, "POST /auth/mfa/step-up/start", "POST /auth/mfa/step-up"]);
  assert.equal((await rejection(auth.stepUp({ passkey: true }))).code, "invalid_passkey");
  assert.deepEqual(server.paths().slice(3), ["POST /auth/mfa/step-up/start", "POST /auth/mfa/step-up"]);
  assert.deepEqual(types(), ["SIGNED_IN"]);
});

test("a passkey step-up whose prompt is closed (passkey_cancelled) or fails (passkey_failed) posts no step-up, and the call is not sent again", async () => {
  const failures: [DOMException, string][] = [
    [new DOMException("The operation either timed out or was not allowed.", "NotAllowedError"), "passkey_cancelled"],
    [new DOMException("The operation is insecure.", "SecurityError"), "passkey_failed"],
  ];
  for (const [failure, code] of failures) {
    const browser = fakeWebAuthn({ get: () => Promise.reject(failure) });
    const { auth, server } = await signedIn(passkeyStepUpServer(), { onStepUpRequired: passkeyPrompt().onStepUpRequired });
    const error = await rejection(auth.deletePasskey(CREDENTIAL_ID));
    assert.deepEqual([error.code, error.cause], [code, failure]);
    assert.equal(browser.asked.get.length, 1);
    assert.deepEqual(server.paths(), [`DELETE /auth/passkeys/${CREDENTIAL_ID}`, "POST /auth/mfa/step-up/start"]);
  }
});

// Bounded: a step-up that asked for a step-up would wait for itself.
test("step-up/start refused (400 invalid_request: the user has no passkey) is thrown before any prompt; refused with step_up_required it is thrown too, never asking onStepUpRequired (a step-up does not step up)", { timeout: 5_000 }, async () => {
  const browser = fakeWebAuthn();
  const noPasskey = await signedIn(() => refusal(400, "invalid_request"));
  const error = await rejection(noPasskey.auth.stepUp({ passkey: true }));
  assert.deepEqual([error.code, error.status], ["invalid_request", 400]);
  assert.deepEqual(noPasskey.server.paths(), ["POST /auth/mfa/step-up/start"]);
  assert.deepEqual(browser.asked.get, []);

  const prompt = passkeyPrompt();
  const refusing = await signedIn(() => refusal(403, "step_up_required"), { onStepUpRequired: prompt.onStepUpRequired });
  assert.equal((await rejection(refusing.auth.stepUp({ passkey: true }))).code, "step_up_required");
  assert.equal(prompt.asked, 0);
  assert.deepEqual(refusing.server.paths(), ["POST /auth/mfa/step-up/start"]);
  assert.deepEqual(browser.asked.get, []);
});

test("onStepUpRequired answering { passkey: true } in a browser without WebAuthn's JSON helpers: the call rejects with passkeys_unsupported after its one request, no step-up sent", async () => {
  const browser = fakeWebAuthn({ without: ["parseRequestOptionsFromJSON"] });
  const prompt = passkeyPrompt();
  const { auth, server, types } = await signedIn(passkeyStepUpServer(), { onStepUpRequired: prompt.onStepUpRequired });
  const error = await rejection(auth.deletePasskey(CREDENTIAL_ID));
  assert.deepEqual([error.code, error.status], ["passkeys_unsupported", undefined]);
  assert.equal(prompt.asked, 1);
  assert.deepEqual(server.paths(), [`DELETE /auth/passkeys/${CREDENTIAL_ID}`]);
  assert.deepEqual(browser.asked.get, []);
  assert.deepEqual(types(), ["SIGNED_IN"]);
});

// --- A browser without WebAuthn's JSON helpers -----------------------------------------------

test("without WebAuthn's JSON helpers (or without WebAuthn) the passkey ceremonies (a passkey step-up too) reject with passkeys_unsupported and send nothing; listPasskeys and deletePasskey still work", async () => {
  const challenge: MfaChallenge = { mfaRequired: true, mfaToken: MFA_TOKEN, methods: ["webauthn"], expiresIn: 300, webauthn: CHALLENGE_OPTIONS };
  for (const without of [["PublicKeyCredential"], ["parseCreationOptionsFromJSON"], ["parseRequestOptionsFromJSON"], ["toJSON"]]) {
    const browser = fakeWebAuthn({ without });
    const { auth, server } = await signedIn(({ method }) => (method === "GET" ? json(200, { passkeys: [] }) : noContent()));
    const ceremonies = [() => auth.registerPasskey("Laptop"), () => auth.signInWithPasskey(), () => auth.verifyMfaWithPasskey(challenge), () => auth.stepUp({ passkey: true })];
    for (const ceremony of ceremonies) {
      const error = await rejection(ceremony());
      assert.equal(error.code, "passkeys_unsupported", `without ${without}`);
      assert.equal(error.status, undefined);
    }
    assert.deepEqual(server.calls, [], `without ${without}: nothing sent`);
    assert.deepEqual(browser.asked, { create: [], get: [] });
    assert.deepEqual(await auth.listPasskeys(), []);
    await auth.deletePasskey(CREDENTIAL_ID);
  }
  // No navigator.credentials at all (Node, or a browser without the Credential Management API).
  fakeWebAuthn();
  setGlobal("navigator", {});
  const { auth } = client(fakeFetch(passkeyLogin()).fetch);
  assert.equal((await rejection(auth.signInWithPasskey())).code, "passkeys_unsupported");
});

// --- Paths --------------------------------------------------------------------------------------

test("passkeys and passkeyLogin are configurable like the other paths (cargo lambda watch's /lambda-url/account/auth/passkeys and /lambda-url/login/auth/passkeys/login)", async () => {
  fakeWebAuthn();
  const server = fakeFetch(({ path, method }) => {
    if (path.endsWith("/login/start") || path.endsWith("/register/start")) return json(200, { passkey_token: PASSKEY_TOKEN, options: path.endsWith("/login/start") ? REQUEST_OPTIONS : CREATION_OPTIONS });
    if (path.endsWith("/login/finish")) return tokenAnswer(0, PASSKEY_AMR);
    if (path.endsWith("/register/finish")) return json(201, { id: CREDENTIAL_ID, name: null, created_at: 1 });
    return method === "GET" ? json(200, { passkeys: [] }) : noContent();
  });
  const { auth } = client(server.fetch, {
    baseUrl: `${API}/stage/`,
    paths: { passkeys: "/lambda-url/account/auth/passkeys", passkeyLogin: "/lambda-url/login/auth/passkeys/login" },
  });
  await auth.signInWithPasskey();
  await auth.registerPasskey();
  await auth.listPasskeys();
  await auth.deletePasskey(CREDENTIAL_ID);
  assert.deepEqual(server.paths(), [
    "POST /stage/lambda-url/login/auth/passkeys/login/start",
    "POST /stage/lambda-url/login/auth/passkeys/login/finish",
    "POST /stage/lambda-url/account/auth/passkeys/register/start",
    "POST /stage/lambda-url/account/auth/passkeys/register/finish",
    "GET /stage/lambda-url/account/auth/passkeys",
    `DELETE /stage/lambda-url/account/auth/passkeys/${CREDENTIAL_ID}`,
  ]);
});

test("a passkey step-up goes to the mfa path's /step-up/start and /step-up (cargo lambda watch's /lambda-url/account/auth/mfa)", async () => {
  fakeWebAuthn();
  const server = fakeFetch(({ path }) => {
    if (path.endsWith("/login/")) return tokenAnswer(0);
    return path.endsWith("/step-up/start") ? json(200, { passkey_token: STEP_UP_TOKEN, options: STEP_UP_OPTIONS, expires_in: 300 }) : noContent();
  });
  const { auth } = client(server.fetch, { baseUrl: `${API}/stage/`, paths: { login: "/lambda-url/login/", mfa: "/lambda-url/account/auth/mfa" } });
  await auth.login("alice@example.com", "pw");
  await auth.stepUp({ passkey: true });
  assert.deepEqual(server.paths(), [
    "POST /stage/lambda-url/login/",
    "POST /stage/lambda-url/account/auth/mfa/step-up/start",
    "POST /stage/lambda-url/account/auth/mfa/step-up",
  ]);
});

test("mfaStatus counts the passkeys; a server that does not report them counts none", async () => {
  const { auth } = await signedIn(() => json(200, { totp: false, recovery_codes_left: 0, methods: [] }));
  assert.deepEqual(await auth.mfaStatus(), { totp: false, recoveryCodesLeft: 0, passkeys: 0, methods: [] });
});
