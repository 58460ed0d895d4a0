"""Verifies the benchmark's token set with PyJWT (jwt.decode with issuer and audience).
Prints one JSON line: {"name", "ns_per_op": [mean of each run], "ops_per_run"}; runs are
sized as in verify_node.mjs."""
import base64
import json
import sys
import time

import jwt

data = json.load(open(sys.argv[1]))
secret = base64.urlsafe_b64decode(data["secret_b64url"] + "=" * (-len(data["secret_b64url"]) % 4))
tokens, issuer, audience = data["tokens"], data["issuer"], data["audience"]
RUNS, RUN_NS, MIN_OPS = 7, 400e6, 1000


def verify(token):
    return jwt.decode(token, secret, algorithms=["HS256"], audience=audience, issuer=issuer)


def time_ops(ops):
    start = time.perf_counter_ns()
    for i in range(ops):
        verify(tokens[i % len(tokens)])
    return time.perf_counter_ns() - start


ops = max(MIN_OPS, round(RUN_NS * MIN_OPS / time_ops(MIN_OPS)))
time_ops(ops)
runs = [time_ops(ops) / ops for _ in range(RUNS)]
print(json.dumps({"name": "python PyJWT jwt.decode", "ns_per_op": runs, "ops_per_run": ops}))
