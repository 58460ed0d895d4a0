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
