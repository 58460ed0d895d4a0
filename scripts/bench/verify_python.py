"""Verifies the benchmark's token set with PyJWT (jwt.decode with issuer and audience).
Prints one JSON line: {"name", "ns_per_op": [run medians...]}."""
import base64
import json
import sys
import time

import jwt

data = json.load(open(sys.argv[1]))
secret = base64.urlsafe_b64decode(data["secret_b64url"] + "=" * (-len(data["secret_b64url"]) % 4))
tokens, issuer, audience = data["tokens"], data["issuer"], data["audience"]
RUNS, OPS = 7, 20000


def verify(token):
    return jwt.decode(token, secret, algorithms=["HS256"], audience=audience, issuer=issuer)


for i in range(2000):
    verify(tokens[i % len(tokens)])
runs = []
for _ in range(RUNS):
    start = time.perf_counter_ns()
    for i in range(OPS):
        verify(tokens[i % len(tokens)])
    runs.append((time.perf_counter_ns() - start) / OPS)
print(json.dumps({"name": "python PyJWT jwt.decode", "ns_per_op": runs}))
