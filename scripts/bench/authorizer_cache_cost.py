"""What API Gateway's authorizer cache TTL costs and saves, per million API requests.

A simulation, not a measurement on AWS: USERS clients each make one request per second for
HOURS hours. Each holds an access token for its whole lifetime (900 s, the default
ACCESS_TOKEN_TTL) and then uses the next one; clients start at random points of their token's
life, so tokens do not all rotate together. Each request goes to one of ROUTES routes, chosen
at random. The cache key is the Authorization header plus the route key, as template.yaml
configures the HTTP API authorizer. A cached answer lives TTL seconds from the invocation that
stored it (a hit does not extend it); TTL 0 means no cache, one invocation per request.

Prices are published on-demand list prices (us-east-1, arm64; check current ones): Lambda
$0.20 per million requests and $0.0000133334 per GB-second. The authorizer has 128 MB; its
handler takes 7.6 us (docs/performance.md), so every invocation is billed Lambda's 1 ms
minimum (use --billed-ms to see another figure). API Gateway's own $1.00 per million HTTP
API requests is the same whatever the TTL.

Also printed: how long after its exp a token can still be let through. The verifier allows
30 s of clock skew, and a cached allow is reused until it expires, so the bound is TTL + 30 s.
Access tokens are never looked up in a database, so the same bound holds after a logout:
a logged-out session's token works until exp + 30 s + TTL.

Usage: python3 scripts/bench/authorizer_cache_cost.py [--users 100] [--hours 2] [--seed 1]
       [--billed-ms 1] [--ttls 0,60,300] [--routes 1,5]
Deterministic for a given seed; takes a few seconds.
"""

import argparse
import random

LAMBDA_PER_REQUEST = 0.20 / 1_000_000
LAMBDA_PER_GB_SECOND = 0.0000133334
AUTHORIZER_MEMORY_GB = 128 / 1024
TOKEN_LIFETIME = 900
LEEWAY = 30


def simulate(users, seconds, ttl, routes, seed):
    """(requests, authorizer invocations) for one configuration."""
    rng = random.Random(seed)
    phases = [rng.randrange(TOKEN_LIFETIME) for _ in range(users)]
    expires = {}  # (user, token index, route) -> second the cached answer stops being used
    requests = invocations = 0
    for t in range(seconds):
        for user, phase in enumerate(phases):
            key = (user, (t + phase) // TOKEN_LIFETIME, rng.randrange(routes))
            requests += 1
            if ttl == 0 or expires.get(key, -1) <= t:
                invocations += 1
                if ttl:
                    expires[key] = t + ttl
    return requests, invocations


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--hours", type=float, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--billed-ms", type=int, default=1)
    p.add_argument("--ttls", default="0,60,300")
    p.add_argument("--routes", default="1,5")
    a = p.parse_args()
    seconds = int(a.hours * 3600)
    per_invocation = LAMBDA_PER_REQUEST + AUTHORIZER_MEMORY_GB * a.billed_ms / 1000 * LAMBDA_PER_GB_SECOND

    print(
        f"{a.users} users x 1 request/s x {seconds} s, token lifetime {TOKEN_LIFETIME} s, seed {a.seed}; "
        f"authorizer 128 MB billed {a.billed_ms} ms = ${per_invocation * 1e6:.4f} per million invocations"
    )
    print()
    print("| cache TTL | routes per user | authorizer invocations per million API requests | authorizer $ per million API requests | token accepted after its exp, at most |")
    print("|---|---|---|---|---|")
    for routes in (int(r) for r in a.routes.split(",")):
        for ttl in (int(t) for t in a.ttls.split(",")):
            requests, invocations = simulate(a.users, seconds, ttl, routes, a.seed)
            per_million = invocations / requests * 1_000_000
            print(
                f"| {ttl} s | {routes} | {per_million:,.0f} | ${per_million * per_invocation:.4f} "
                f"| {ttl + LEEWAY} s |"
            )


if __name__ == "__main__":
    main()
