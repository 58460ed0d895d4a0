/** The access token's claims the server issues (`docs/design.md`); others pass through. */
export interface Claims {
  sub: string;
  sid: string;
  exp: number;
  iat: number;
  iss: string;
  aud: string;
  roles?: string[];
  scope?: string;
  /** How the user authenticated (RFC 8176): `["pwd"]`, `["pwd", "otp", "mfa"]` after a second factor. */
  amr?: string[];
  /** When the user last authenticated (epoch seconds): the login or the latest step-up; a refresh keeps it. */
  auth_time?: number;
  /** Never in a token: it tells `login()`'s claims from an `MfaChallenge` (`if (result?.mfaRequired)`). */
  mfaRequired?: never;
  [claim: string]: unknown;
}

/**
 * Reads a JWT's payload without verifying it: the client only needs `exp` and `sid` for
 * display and timing; the API verifies the signature on every call.
 */
export function decodeClaims(token: string): Claims | null {
  try {
    const payload = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as Claims;
  } catch {
    return null;
  }
}
