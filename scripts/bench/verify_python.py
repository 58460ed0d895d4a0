"""Verifies the benchmark's token sets (ES256 and EdDSA) with PyJWT on `cryptography`
(jwt.decode with the key read once from the JWK, issuer, audience, the algorithm pinned,
exp/iat/iss/aud/sub required). Prints one JSON line per algorithm: {"name", "alg",
"ns_per_op": [mean of each run], "ops_per_run"}; runs are sized as in verify_node.mjs."""
import json
import sys
import time

import cryptography
import jwt

data = json.load(open(sys.argv[1]))
issuer, audience = data["issuer"], data["audience"]
RUNS, RUN_NS, MIN_OPS = 7, 400e6, 1000
NAME = f"python PyJWT {jwt.__version__} jwt.decode (cryptography {cryptography.__version__})"


def measure(alg, jwk, tokens):
    key = jwt.PyJWK(jwk, algorithm=alg).key
    options = {"require": ["exp", "iat", "iss", "aud", "sub"]}

    def time_ops(ops):
        start = time.perf_counter_ns()
        for i in range(ops):
            jwt.decode(tokens[i % len(tokens)], key, algorithms=[alg], audience=audience, issuer=issuer, options=options)
        return time.perf_counter_ns() - start

    ops = max(MIN_OPS, round(RUN_NS * MIN_OPS / time_ops(MIN_OPS)))
    time_ops(ops)
    runs = [time_ops(ops) / ops for _ in range(RUNS)]
    print(json.dumps({"name": NAME, "alg": alg, "ns_per_op": runs, "ops_per_run": ops}), flush=True)


for token_set in data["sets"]:
    measure(token_set["alg"], token_set["jwk"], token_set["tokens"])
