"""A third-party verifier, as a user of the issuer would write it with PyJWT: start from
the issuer's OpenID discovery document, take its jwks_uri, and verify each token with
PyJWKClient and jwt.decode pinned to the document's algorithms, issuer and our audience.

Reads {"issuer", "audience", "tokens": {name: token}} as JSON on stdin and prints
{"discovery": {...}, "results": {name: {"accepted", "error", "sub"}}} as JSON. Prints no
token, key or exception message (only exception class names). Exits non-zero when the
discovery document cannot be fetched or names another issuer (OpenID Connect Discovery
1.0 section 4.3): a verifier must then trust nothing.
"""

import json
import sys
import urllib.request

import jwt
from jwt import PyJWKClient

TIMEOUT_SECS = 10


def fetch_json(url):
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECS) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return json.load(response)


def main():
    request = json.load(sys.stdin)
    issuer = request["issuer"]
    metadata = fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if metadata.get("issuer") != issuer:
        sys.exit("the discovery document names another issuer")
    algorithms = metadata["id_token_signing_alg_values_supported"]
    client = PyJWKClient(metadata["jwks_uri"], timeout=TIMEOUT_SECS)
    published = [key.key_id for key in client.get_signing_keys()]

    results = {}
    for name, token in request["tokens"].items():
        try:
            signing_key = client.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key,
                algorithms=algorithms,
                audience=request["audience"],
                issuer=metadata["issuer"],
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            results[name] = {"accepted": True, "sub": claims["sub"]}
        except Exception as e:  # every failure is a rejection; report only its kind
            results[name] = {"accepted": False, "error": type(e).__name__}

    print(json.dumps({
        "discovery": {"jwks_uri": metadata["jwks_uri"], "algorithms": algorithms, "kids": published},
        "results": results,
    }))


if __name__ == "__main__":
    main()
