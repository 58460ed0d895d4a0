// Two-factor authentication (issue 21, TOTP) against a fake fetch: login's challenge and its
// second step, the account function's MFA calls, and the step-up that a 403
// step_up_required triggers. Each request is checked as sent (method, path, body, bearer).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { AuthError, type AuthClient, type AuthClientOptions, type Claims } from "../src/index.js";
import { API, type Handler, fakeFetch, jwt, json, tokenAnswer, noContent, refusal, client, closeClients, fakeStorage } from "./fakes.js";

const MFA_TOKEN = "Vf3yq2Qm8n1pZr6sT0uWxA4bC7dE9gH5jK2lM8nP0qR";
const challenge = () => json(200, { mfa_required: true, mfa_token: MFA_TOKEN, methods: ["totp", "recovery_code"], expires_in: 300 });
const RECOVERY_CODES = Array.from({ length: 10 }, (_, i) => `abcd-efgh-ijkl-mno${i}`);

afterEach(closeClients);

/** A login function for an account with TOTP on: the password gets a challenge, `123456` or a recovery code a token. */
const mfaLogin: Handler = ({ path, body }) => {
  if (path === "/auth/login") return challenge();
  if (path === "/auth/login/mfa") {
    const { code, recovery_code } = body as { code?: string; recovery_code?: string };
    return code === "123456" || recovery_code === RECOVERY_CODES[0] ? tokenAnswer(0, ["pwd", "otp", "mfa"]) : refusal(401, "invalid_code");
  }
  throw new Error(`unexpected ${path}`);
};

// --- Login's challenge ---------------------------------------------------------------------

test("login for an account with TOTP on resolves to the challenge, in the page's terms, and signs nobody in: no event, no token, no refresh", async () => {
  const server = fakeFetch(mfaLogin);
  const { auth, events } = client(server.fetch);
  const result = await auth.login("alice@example.com", "pw");
  // The type tells the two answers apart: a challenge has no claims to read.
  assert.equal(result?.mfaRequired ? result.mfaToken : result?.sub, MFA_TOKEN);
  assert.deepEqual(result, { mfaRequired: true, mfaToken: MFA_TOKEN, methods: ["totp", "recovery_code"], expiresIn: 300 });
  assert.deepEqual(events, []);
  assert.equal(auth.getClaims(), null);
  assert.deepEqual(server.paths(), ["POST /auth/login"], "nothing sent but the login");
});

test("a challenge reaches no other tab, and a tab signed in as someone else stays so (no SIGNED_OUT, same token)", async () => {
  const channel = `test-${Math.random()}`;
  let logins = 0;
  const server = fakeFetch(({ path }) => (path === "/auth/login" ? (++logins === 1 ? tokenAnswer(1, ["pwd"], "bob") : challenge()) : refusal(500, "x")));
  const first = client(server.fetch, { channel });
  const second = client(server.fetch, { channel });
  await first.auth.login("bob@example.com", "pw");
  await new Promise((resolve) => setTimeout(resolve, 50));
  const token = await first.auth.getAccessToken();
  assert.equal((await first.auth.login("alice@example.com", "pw"))?.mfaRequired, true);
  await new Promise((resolve) => setTimeout(resolve, 50));
  for (const tab of [first, second]) {
    assert.deepEqual(tab.types(), ["SIGNED_IN"]);
    assert.equal(await tab.auth.getAccessToken(), token);
    assert.equal(tab.auth.getClaims()?.sub, "bob");
  }
});

test("verifyMfa with a TOTP code: one POST of {mfa_token, code} to /auth/login/mfa with the cookies, then signed in as login signs in (SIGNED_IN, the token, its amr)", async () => {
  const server = fakeFetch(mfaLogin);
  const { auth, events } = client(server.fetch);
  const { mfaToken } = (await auth.login("alice@example.com", "pw")) as { mfaToken: string };
  const claims = await auth.verifyMfa({ mfaToken, code: "123456" });
  assert.deepEqual(server.calls[1], {
    path: "/auth/login/mfa",
    method: "POST",
    bearer: null,
    contentType: "application/json",
    credentials: "include",
    body: { mfa_token: MFA_TOKEN, code: "123456" },
  });
  assert.deepEqual(claims?.amr, ["pwd", "otp", "mfa"]);
  assert.deepEqual(
    events.map((e) => [e.type, "claims" in e ? e.claims?.sub : undefined]),
    [["SIGNED_IN", "user-1"]],
  );
  assert.equal(await auth.getAccessToken(), jwt(0, ["pwd", "otp", "mfa"]));
  assert.equal(server.calls.length, 2, "the token is used as it came: no refresh");
});

test("verifyMfa with a recovery code sends {mfa_token, recovery_code}", async () => {
  const server = fakeFetch(mfaLogin);
  const { auth, types } = client(server.fetch);
  await auth.verifyMfa({ mfaToken: MFA_TOKEN, recoveryCode: RECOVERY_CODES[0]! });
  assert.deepEqual(server.calls[0]!.body, { mfa_token: MFA_TOKEN, recovery_code: RECOVERY_CODES[0] });
  assert.deepEqual(types(), ["SIGNED_IN"]);
});

test("verifyMfa without an mfaToken (a challenge after another provider's sign-in, in its HttpOnly cookie) sends no mfa_token, with the cookies", async () => {
  const server = fakeFetch(mfaLogin);
  const { auth } = client(server.fetch);
  await auth.verifyMfa({ code: "123456" }).catch(() => undefined);
  assert.deepEqual(server.calls[0]!.body, { code: "123456" });
  assert.equal(server.calls[0]!.credentials, "include");
  await auth.verifyMfa({ mfaToken: "", recoveryCode: RECOVERY_CODES[0]! }).catch(() => undefined);
  assert.deepEqual(server.calls[1]!.body, { recovery_code: RECOVERY_CODES[0] });
});

test("verifyMfa's sign-in reaches the other tabs, as login's does", async () => {
  const channel = `test-${Math.random()}`;
  const server = fakeFetch(mfaLogin);
  const first = client(server.fetch, { channel });
  const second = client(server.fetch, { channel });
  await first.auth.login("alice@example.com", "pw");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(second.types(), [], "the challenge reached no tab");
  await first.auth.verifyMfa({ mfaToken: MFA_TOKEN, code: "123456" });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(second.types(), ["SIGNED_IN"]);
  assert.equal(await second.auth.getAccessToken(), await first.auth.getAccessToken());
  assert.equal(server.calls.length, 2, "the other tab sent nothing");
});

test("verifyMfa answered 401 invalid_code throws it and changes nothing: no event, no refresh, no sign-out; the right code then signs in", async () => {
  const server = fakeFetch(mfaLogin);
  const { auth, types } = client(server.fetch);
  await auth.login("alice@example.com", "pw");
  const error = await auth.verifyMfa({ mfaToken: MFA_TOKEN, code: "000000" }).then(
    () => assert.fail("a wrong code resolved"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof AuthError);
  assert.deepEqual([error.code, error.status, error.message], ["invalid_code", 401, "message for invalid_code"]);
  assert.deepEqual(types(), []);
  assert.equal(auth.getClaims(), null);
  await auth.verifyMfa({ mfaToken: MFA_TOKEN, code: "123456" });
  assert.deepEqual(types(), ["SIGNED_IN"]);
  assert.deepEqual(server.paths(), ["POST /auth/login", "POST /auth/login/mfa", "POST /auth/login/mfa"]);
});

test("verifyMfa's other refusals are AuthErrors with their code, status and Retry-After, sent once each", async () => {
  for (const [status, code, retryAfter] of [
    [401, "invalid_token", undefined],
    [429, "too_many_attempts", 30],
    [400, "invalid_request", undefined],
  ] as const) {
    const server = fakeFetch(() => refusal(status, code, retryAfter ? { "retry-after": String(retryAfter) } : {}));
    const { auth, events } = client(server.fetch);
    await assert.rejects(auth.verifyMfa({ mfaToken: MFA_TOKEN, code: "123456" }), (error: unknown) => {
      assert.ok(error instanceof AuthError);
      assert.deepEqual([error.code, error.status, error.retryAfter], [code, status, retryAfter]);
      return true;
    });
    assert.equal(server.calls.length, 1, code);
    assert.deepEqual(events, []);
  }
});

test("verifyMfa: no readable answer is network_error", async () => {
  const cause = new TypeError("Failed to fetch");
  const { auth } = client(
    fakeFetch(() => {
      throw cause;
    }).fetch,
  );
  await assert.rejects(auth.verifyMfa({ mfaToken: MFA_TOKEN, code: "123456" }), { code: "network_error", cause });
});

test("a logout left pending stays so through the challenge (no new cookie yet), and goes with verifyMfa's sign-in", async () => {
  const storage = fakeStorage();
  const server = fakeFetch((call) => (call.path === "/auth/logout" ? refusal(503, "unavailable") : mfaLogin(call)));
  const { auth } = client(server.fetch, { retry: { maxAttempts: 1 } });
  storage.set(`auth-client:logout-pending:${API}`, "this");
  await auth.login("alice@example.com", "pw");
  assert.equal(storage.size, 1, "the old cookie is still the browser's: its logout is still owed");
  await auth.verifyMfa({ mfaToken: MFA_TOKEN, code: "123456" });
  assert.equal(storage.size, 0, "the new cookie replaced the one the logout was for");
  assert.deepEqual(server.paths(), ["POST /auth/logout", "POST /auth/login", "POST /auth/login/mfa"]);
});

test("loginMfa and mfa are configurable like the other paths (cargo lambda watch's /lambda-url/login/auth/login/mfa and /lambda-url/account/auth/mfa)", async () => {
  const server = fakeFetch(({ path }) => (path.endsWith("/login/mfa") ? tokenAnswer(0) : json(200, { totp: false, recovery_codes_left: 0, methods: [] })));
  const { auth } = client(server.fetch, {
    baseUrl: `${API}/stage/`,
    paths: { loginMfa: "/lambda-url/login/auth/login/mfa", mfa: "/lambda-url/account/auth/mfa" },
  });
  await auth.verifyMfa({ mfaToken: MFA_TOKEN, code: "123456" });
  await auth.mfaStatus();
  await auth.stepUp({ code: "123456" });
  assert.deepEqual(server.paths(), [
    "POST /stage/lambda-url/login/auth/login/mfa",
    "GET /stage/lambda-url/account/auth/mfa",
    "POST /stage/lambda-url/account/auth/mfa/step-up",
  ]);
});

// --- The account function's MFA calls --------------------------------------------------------

/** Each call: how to make it, the request it must send, the 2xx it gets, what it resolves to, and an error the contract gives it. */
const calls: {
  name: string;
  call: (auth: AuthClient) => Promise<unknown>;
  method: string;
  path: string;
  body: unknown;
  success: () => Response;
  result: unknown;
  error: [number, string];
}[] = [
  {
    name: "mfaStatus",
    call: (auth) => auth.mfaStatus(),
    method: "GET",
    path: "/auth/mfa",
    body: undefined,
    success: () => json(200, { totp: true, recovery_codes_left: 7, passkeys: 2, methods: ["totp", "recovery_code", "webauthn"] }),
    result: { totp: true, recoveryCodesLeft: 7, passkeys: 2, methods: ["totp", "recovery_code", "webauthn"] },
    error: [503, "unavailable"],
  },
  {
    name: "enrollTotp",
    call: (auth) => auth.enrollTotp(),
    method: "POST",
    path: "/auth/mfa/totp",
    body: undefined,
    success: () => json(200, { secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", otpauth_uri: "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Example", expires_in: 600 }),
    result: { secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", otpauthUri: "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Example", expiresIn: 600 },
    error: [409, "mfa_already_enabled"],
  },
  {
    name: "confirmTotp",
    call: (auth) => auth.confirmTotp("654321"),
    method: "POST",
    path: "/auth/mfa/totp/confirm",
    body: { code: "654321" },
    success: () => json(200, { recovery_codes: RECOVERY_CODES }),
    result: RECOVERY_CODES,
    error: [400, "invalid_request"],
  },
  {
    name: "disableTotp",
    call: (auth) => auth.disableTotp(),
    method: "DELETE",
    path: "/auth/mfa/totp",
    body: undefined,
    success: noContent,
    result: undefined,
    error: [403, "step_up_required"],
  },
  {
    name: "regenerateRecoveryCodes",
    call: (auth) => auth.regenerateRecoveryCodes(),
    method: "POST",
    path: "/auth/mfa/recovery-codes",
    body: undefined,
    success: () => json(200, { recovery_codes: RECOVERY_CODES }),
    result: RECOVERY_CODES,
    error: [403, "step_up_required"],
  },
  {
    name: "stepUp with a code",
    call: (auth) => auth.stepUp({ code: "123456" }),
    method: "POST",
    path: "/auth/mfa/step-up",
    body: { code: "123456" },
    success: noContent,
    result: undefined,
    error: [401, "invalid_code"],
  },
  {
    name: "stepUp with a recovery code",
    call: (auth) => auth.stepUp({ recoveryCode: RECOVERY_CODES[3]! }),
    method: "POST",
    path: "/auth/mfa/step-up",
    body: { recovery_code: RECOVERY_CODES[3] },
    success: noContent,
    result: undefined,
    error: [401, "invalid_code"],
  },
];

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

for (const op of calls) {
  test(`${op.name}: ${op.method} ${op.path} with the bearer token${op.body ? " and its JSON body" : " and no body"}; resolves to the answer in the page's terms`, async () => {
    const { auth, server, types } = await signedIn(() => op.success());
    assert.deepEqual(await op.call(auth), op.result);
    assert.deepEqual(server.calls, [
      {
        path: op.path,
        method: op.method,
        bearer: `Bearer ${jwt(0)}`,
        contentType: op.body ? "application/json" : null,
        credentials: "same-origin",
        body: op.body,
      },
    ]);
    assert.deepEqual(types(), ["SIGNED_IN"], "no event");
  });

  test(`${op.name}: a refusal (${op.error[0]} ${op.error[1]}) is an AuthError with its code and status, sent once, with no refresh`, async () => {
    const { auth, server } = await signedIn(() => refusal(...op.error));
    await assert.rejects(op.call(auth), (error: unknown) => {
      assert.ok(error instanceof AuthError);
      assert.deepEqual([error.code, error.status, error.message], [op.error[1], op.error[0], `message for ${op.error[1]}`]);
      return true;
    });
    assert.deepEqual(server.paths(), [`${op.method} ${op.path}`]);
  });

  test(`${op.name}: a 401 invalid_token (a stale access token) refreshes once and sends the call again with the new token`, async () => {
    const { auth, server, types } = await signedIn(({ bearer }) => (bearer === `Bearer ${jwt(0)}` ? refusal(401, "invalid_token") : op.success()));
    assert.deepEqual(await op.call(auth), op.result);
    assert.deepEqual(
      server.calls.map((c) => [c.method, c.path, c.bearer, c.body]),
      [
        [op.method, op.path, `Bearer ${jwt(0)}`, op.body],
        ["POST", "/auth/refresh", null, undefined],
        [op.method, op.path, `Bearer ${jwt(1, ["pwd", "otp", "mfa"])}`, op.body],
      ],
    );
    assert.deepEqual(types(), ["SIGNED_IN", "TOKEN_REFRESHED"]);
  });

  test(`${op.name}: signed out, it rejects with signed_out and sends nothing; offline, with network_error`, async () => {
    const server = fakeFetch(() => refusal(401, "invalid_token"));
    const { auth } = client(server.fetch);
    assert.equal(await auth.getAccessToken(), null);
    const sent = server.calls.length;
    await assert.rejects(op.call(auth), { code: "signed_out" });
    assert.equal(server.calls.length, sent);

    const cause = new TypeError("Failed to fetch");
    const offline = await signedIn(() => {
      throw cause;
    });
    await assert.rejects(op.call(offline.auth), { code: "network_error", cause });
  });
}

test("a wrong code to confirmTotp or stepUp (401 invalid_code) is not sent again with a refreshed token: that would spend a second attempt", async () => {
  const { auth, server, types } = await signedIn(() => refusal(401, "invalid_code"));
  await assert.rejects(auth.confirmTotp("000000"), { code: "invalid_code" });
  await assert.rejects(auth.stepUp({ code: "000000" }), { code: "invalid_code" });
  assert.deepEqual(server.paths(), ["POST /auth/mfa/totp/confirm", "POST /auth/mfa/step-up"]);
  assert.deepEqual(types(), ["SIGNED_IN"]);
});

// --- Step-up --------------------------------------------------------------------------------

/**
 * An account function that asks for a recent second factor: a stepped-up session (after a
 * step-up POST with `123456` or a recovery code) is let through; others get 403 step_up_required.
 */
function stepUpServer() {
  let steppedUp = false;
  const answer: Handler = ({ path, body }) => {
    if (path === "/auth/mfa/step-up") {
      const { code, recovery_code } = body as { code?: string; recovery_code?: string };
      if (code !== "123456" && recovery_code !== RECOVERY_CODES[0]) return refusal(401, "invalid_code");
      steppedUp = true;
      return noContent();
    }
    if (!steppedUp) return refusal(403, "step_up_required");
    return path === "/auth/mfa/totp" ? noContent() : json(200, { recovery_codes: RECOVERY_CODES });
  };
  return answer;
}

test("403 step_up_required: the client asks onStepUpRequired, steps up with its code, refreshes, and sends the call once more with the new token", async () => {
  let asked = 0;
  const onStepUpRequired = async () => (asked++, { code: "123456" });
  const { auth, server, events } = await signedIn(stepUpServer(), { onStepUpRequired });
  assert.equal(await auth.disableTotp(), undefined);
  assert.equal(asked, 1);
  const stepped = jwt(1, ["pwd", "otp", "mfa"]);
  assert.deepEqual(
    server.calls.map((c) => [c.method, c.path, c.bearer, c.body]),
    [
      ["DELETE", "/auth/mfa/totp", `Bearer ${jwt(0)}`, undefined],
      ["POST", "/auth/mfa/step-up", `Bearer ${jwt(0)}`, { code: "123456" }],
      ["POST", "/auth/refresh", null, undefined],
      ["DELETE", "/auth/mfa/totp", `Bearer ${stepped}`, undefined],
    ],
  );
  assert.deepEqual(
    events.map((e) => e.type),
    ["SIGNED_IN", "TOKEN_REFRESHED"],
  );
  const claims = auth.getClaims() as Claims;
  assert.deepEqual(claims.amr, ["pwd", "otp", "mfa"], "the refreshed token carries the second factor");
});

test("step-up with a recovery code from onStepUpRequired sends {recovery_code}, and the retried call resolves to its answer", async () => {
  const { auth, server } = await signedIn(stepUpServer(), { onStepUpRequired: async () => ({ recoveryCode: RECOVERY_CODES[0]! }) });
  assert.deepEqual(await auth.regenerateRecoveryCodes(), RECOVERY_CODES);
  assert.deepEqual(server.calls.find((c) => c.path === "/auth/mfa/step-up")?.body, { recovery_code: RECOVERY_CODES[0] });
  assert.deepEqual(server.paths(), ["POST /auth/mfa/recovery-codes", "POST /auth/mfa/step-up", "POST /auth/refresh", "POST /auth/mfa/recovery-codes"]);
});

test("403 step_up_required with no onStepUpRequired is thrown as an AuthError: no step-up, no refresh, no retry", async () => {
  const { auth, server, types } = await signedIn(stepUpServer());
  await assert.rejects(auth.disableTotp(), (error: unknown) => error instanceof AuthError && error.code === "step_up_required" && error.status === 403);
  assert.deepEqual(server.paths(), ["DELETE /auth/mfa/totp"]);
  assert.deepEqual(types(), ["SIGNED_IN"]);
});

test("onStepUpRequired answering null (the user cancelled) lets step_up_required through, nothing else sent", async () => {
  let asked = 0;
  const { auth, server } = await signedIn(stepUpServer(), { onStepUpRequired: async () => (asked++, null) });
  await assert.rejects(auth.regenerateRecoveryCodes(), { code: "step_up_required", status: 403 });
  assert.equal(asked, 1);
  assert.deepEqual(server.paths(), ["POST /auth/mfa/recovery-codes"]);
});

test("a wrong step-up code surfaces as invalid_code: the call is not sent again and nothing is refreshed", async () => {
  const { auth, server } = await signedIn(stepUpServer(), { onStepUpRequired: async () => ({ code: "000000" }) });
  await assert.rejects(auth.disableTotp(), { code: "invalid_code", status: 401 });
  assert.deepEqual(server.paths(), ["DELETE /auth/mfa/totp", "POST /auth/mfa/step-up"]);
});

test("a call still refused with step_up_required after the step-up is thrown: one step-up per call, no loop", async () => {
  let asked = 0;
  // A second prompt gets null, so that a client that loops fails here instead of spinning.
  const { auth, server } = await signedIn(({ path }) => (path === "/auth/mfa/step-up" ? noContent() : refusal(403, "step_up_required")), {
    onStepUpRequired: async () => (++asked === 1 ? { code: "123456" } : null),
  });
  await assert.rejects(auth.disableTotp(), { code: "step_up_required" });
  assert.equal(asked, 1);
  assert.deepEqual(server.paths(), ["DELETE /auth/mfa/totp", "POST /auth/mfa/step-up", "POST /auth/refresh", "DELETE /auth/mfa/totp"]);
});

test("calls refused with step_up_required together share one prompt, one step-up and one refresh, and each is sent again", { timeout: 5_000 }, async () => {
  // The prompts stay open until both calls were refused, as a dialog would.
  const prompts: ((factor: { code: string }) => void)[] = [];
  const onStepUpRequired = () => new Promise<{ code: string }>((resolve) => prompts.push(resolve));
  const { auth, server } = await signedIn(stepUpServer(), { onStepUpRequired });
  const both = Promise.all([auth.disableTotp(), auth.regenerateRecoveryCodes()]);
  while (server.calls.length < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  await new Promise((resolve) => setTimeout(resolve, 10));
  const asked = prompts.length;
  prompts.forEach((answer) => answer({ code: "123456" }));
  assert.deepEqual(await both, [undefined, RECOVERY_CODES]);
  assert.equal(asked, 1);
  const count = (path: string) => server.calls.filter((c) => c.path === path).length;
  assert.deepEqual([count("/auth/mfa/step-up"), count("/auth/refresh"), count("/auth/mfa/totp"), count("/auth/mfa/recovery-codes")], [1, 1, 2, 2]);
});

test("stepUp called by the page never asks onStepUpRequired, even when it is refused with step_up_required", async () => {
  let asked = 0;
  const { auth, server } = await signedIn(() => refusal(403, "step_up_required"), { onStepUpRequired: async () => (asked++, null) });
  await assert.rejects(auth.stepUp({ code: "123456" }), { code: "step_up_required" });
  assert.equal(asked, 0);
  assert.deepEqual(server.paths(), ["POST /auth/mfa/step-up"]);
});
