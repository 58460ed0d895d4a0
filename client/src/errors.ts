/** What went wrong, as a `code` the caller can switch on (see {@link AuthErrorCode}). */
export type AuthErrorCode =
  /** No session: sign in first. Nothing was sent. */
  | "signed_out"
  /** The network failed or the server answered 503 after every retry; the session may still be valid. */
  | "unavailable"
  /** The request never got an answer the page may read (offline, or refused by CORS). */
  | "network_error"
  /**
   * This browser has no WebAuthn with its JSON helpers (`PublicKeyCredential.parseCreationOptionsFromJSON`,
   * `parseRequestOptionsFromJSON`, `toJSON`), or the page is not a secure context. Nothing was sent.
   */
  | "passkeys_unsupported"
  /** The user closed the browser's passkey prompt, or it timed out (the browser does not say which). */
  | "passkey_cancelled"
  /** The authenticator already holds one of this user's passkeys (the server's `excludeCredentials`). */
  | "passkey_exists"
  /** The browser's passkey prompt failed otherwise (its error is the `cause`). */
  | "passkey_failed"
  /**
   * Any error code of the server's error table (`invalid_credentials`, `too_many_attempts`,
   * `email_not_verified`, `weak_password`, `invalid_token`, `signup_closed`, `forbidden_origin`,
   * `invalid_code`, `step_up_required`, `mfa_already_enabled`, `invalid_passkey`, `not_found`, ...),
   * or `http_<status>` for an answer without one.
   */
  | (string & {});

/** The one error class the client throws, named by `code` like the server's error table. */
export class AuthError extends Error {
  override readonly name = "AuthError";
  /** The HTTP status, when the server answered. */
  readonly status: number | undefined;
  /** Seconds to wait, from `Retry-After` (429). */
  readonly retryAfter: number | undefined;

  constructor(
    readonly code: AuthErrorCode,
    message: string,
    options: { status?: number; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
    this.retryAfter = options.retryAfter;
  }

  /** The server's `{"error", "message"}` answer as an `AuthError`; a body that is not one keeps the status. */
  static async fromResponse(response: Response): Promise<AuthError> {
    const body = await response.json().catch(() => ({}));
    const retryAfter = Number(response.headers.get("retry-after")) || undefined;
    return new AuthError(
      typeof body.error === "string" ? body.error : `http_${response.status}`,
      typeof body.message === "string" ? body.message : `HTTP ${response.status}`,
      retryAfter === undefined ? { status: response.status } : { status: response.status, retryAfter },
    );
  }
}
