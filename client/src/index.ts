/**
 * Browser client for the auth endpoints: the access token in memory, the refresh token
 * in its HttpOnly cookie, silent refresh, and sign-in and sign-out shared by the tabs.
 * Zero runtime dependencies.
 */
export { createAuthClient } from "./client.js";
export type {
  AuthClient,
  AuthClientOptions,
  AuthEvent,
  AuthPaths,
  MfaChallenge,
  MfaFactor,
  MfaMethod,
  MfaStatus,
  Passkey,
  PasskeyRequestOptions,
  PendingMfaChallenge,
  SignOutReason,
  StepUpFactor,
  TotpEnrollment,
} from "./client.js";
export { AuthError } from "./errors.js";
export type { AuthErrorCode } from "./errors.js";
export type { Claims } from "./claims.js";
export type { RetryOptions } from "./backoff.js";
