"""What this stack costs per month at 10k, 100k and 1M monthly active users, next to Cognito
and Auth0, from the figures a `scripts/bench.sh` run measured.

Measured (read from the run's output; the script stops, naming the file, when one is missing):
- CPU per request, from criterion (target/criterion): argon2id verification and a token pair
  (login), a rotation (refresh), the authorizer's handler.
- DynamoDB calls per operation, from the SDK call counter (target/bench/calls.md). The split
  into reads and writes is the design's (OPERATIONS below); the script refuses to run when the
  counter's total no longer matches it, so the split cannot silently go stale.
- Cold-start init time, from lambda_init (target/bench/lambda_init.md).

Assumed (flags; change them to your workload and region):
- the workload per active user and month (WORKLOAD, `--logins` etc.);
- 5 ms per in-region DynamoDB round trip (`--dynamodb-ms`): not measurable here, the
  emulator is on loopback;
- a cold start for 1 request in 200 (`--cold-start-rate`), each one billed its init and, for
  login and refresh, one Secrets Manager call;
- CloudWatch Logs: Lambda's platform lines for every invocation (`--log-bytes`; none for the
  authorizer, whose `SystemLogLevel` is WARN in template.yaml) and an audit line for each
  login, refresh and logout;
- the authorizer: our Lambda authorizer with no cache, with API Gateway's cache answering
  `--cache-hit-rate` of the API requests, or the HTTP API's built-in JWT authorizer checking
  our tokens against the published JWKS (template.yaml's `JwtAuthorizer`; no Lambda).

Billed duration per request = CPU time / (memory / 1769 MB, Lambda's share of a vCPU) + round
trips x the DynamoDB latency, rounded up to Lambda's 1 ms. Every item is under 1 KB: a
strongly consistent read is 1 RRU, a write 1 WRU, a transaction's item 2.

Prices: published on-demand list prices, us-east-1, arm64, with their source and the date
they were read (PRICES, CHARGED_BY_PEERS). Free tiers are applied to the peers (their
10,000 free MAU) but not to AWS's building blocks (Lambda's 1M free requests a month are
shared by a whole account).

Usage: python3 scripts/bench/cost.py [--criterion target/criterion] [--bench target/bench]
       [--plot docs/cost.png] [--markdown]
"""

import argparse
import json
import math
import os
import re
import sys

# us-east-1, arm64, on-demand. Sources: aws.amazon.com/{lambda,dynamodb,api-gateway,
# secrets-manager,ses}/pricing as transcribed on 2026-09-20 and cross-checked with third-party
# pages read on 2026-12-04 (docs/performance.md lists them).
PRICES = {
    "lambda_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_gb_month": 0.25,
    "api_gateway_request": 1.00 / 1e6,  # HTTP API, first 300M a month
    "secrets_manager_call": 0.05 / 10_000,
    "secrets_manager_secret_month": 0.40,
    "ses_message": 0.10 / 1000,
    "logs_gb": 0.50,  # CloudWatch Logs ingestion, standard class
}
# Log bytes per invocation: Lambda's platform.start and platform.report lines in the JSON
# log format (`--log-bytes`), and one audit line where the operation writes one (170 to 240
# bytes in the end-to-end tests' logs, plus Lambda's timestamp and the user agent).
LOG_BYTES_PLATFORM = 550
LOG_BYTES_AUDIT = 300
SECRETS = 2  # the private key set and the public JWKS
STORED_BYTES_PER_USER = 2048  # the user item, its factors item, a few live sessions
FULL_VCPU_MB = 1769

# The design's reads and writes per operation; their sum must equal what the call counter
# measured for the row of calls.md named in `calls`. `index_writes`: a new session item is
# also written to the sessions table's two KEYS_ONLY indexes (2 WRU more). `audit`: audit
# lines logged per request.
OPERATIONS = {
    "login": {
        "function": "login", "memory": 1024, "calls": "login",
        "reads": 2, "writes": 3, "round_trips": 2,  # GetItem user, factors; reservation, session, reset
        "index_writes": 2, "audit": 1,
        "cpu": ["argon2id/verify", "ES256/issue_token_pair"],
    },
    "refresh": {
        "function": "refresh", "memory": 256, "calls": "refresh",
        "reads": 1, "writes": 1, "round_trips": 2,  # the rotation's UpdateItem, then GetItem user
        "audit": 1,
        "cpu": ["ES256/rotation_cpu"],
    },
    "logout": {
        "function": "logout", "memory": 256, "calls": "logout",
        "reads": 0, "writes": 1, "round_trips": 1,  # one UpdateItem; hashing a token is microseconds
        "audit": 1,
        "cpu": [],
    },
    "account": {
        "function": "account", "memory": 512, "calls": "account: list sessions",
        "reads": 9, "writes": 0, "round_trips": 3,  # session + user, the index Query, the items
        "cpu": ["ES256/verify"],
    },
    "authorizer": {
        "function": "authorizer", "memory": 128, "calls": "authorizer, 100 warm invocations",
        "reads": 0, "writes": 0, "round_trips": 0,
        "platform_logs": False,  # SystemLogLevel: WARN in template.yaml; allows log nothing
        "cpu": ["ES256/authorizer_handler"],
    },
    "email": {
        # POST /auth/password/forgot (or a sign-up, a resend): answers no sooner than 1.5 s
        # after it began, so that time tells nothing; that wait is billed.
        "function": "register", "memory": 1024, "calls": None,
        "reads": 1, "writes": 4, "round_trips": 3, "floor_ms": 1500,
        "cpu": [],
    },
}

# Per active user and month.
WORKLOAD = {
    "logins": 20,  # password sign-ins
    "refreshes": 8 * 30,  # one every 15 minutes, 2 hours a day
    "logouts": 10,
    "account_calls": 2,  # e.g. listing one's sessions
    "api_calls": 200 * 30,  # through the authorizer
    "emails": 1,  # a verification or reset
}

# The peers' published prices per MAU a month; source and date in docs/performance.md.
COGNITO = {
    # Lite: 10,000 free, $0.0055 up to 100,000, $0.0046 above (to 1M; later bands not needed here).
    "Cognito Lite": [(10_000, 0.0), (100_000, 0.0055), (math.inf, 0.0046)],
    # Essentials (the default for new user pools): 10,000 free, then $0.015.
    "Cognito Essentials": [(10_000, 0.0), (math.inf, 0.015)],
}
AUTH0_FREE_MAU = 25_000  # the Free plan's cap; paid B2C plans above it are not priced in text
MODELLED_MAU = 1_000_000  # Lite's bands above 1M (lower prices) are not in the sources


def tiered(mau, bands):
    cost, below = 0.0, 0
    for upto, price in bands:
        n = max(0, min(mau, upto) - below)
        cost += n * price
        below = upto
        if mau <= upto:
            break
    return cost


def criterion_ms(criterion_dir, bench_id):
    path = os.path.join(criterion_dir, bench_id, "new", "estimates.json")
    if not os.path.exists(path):
        sys.exit(f"cost.py: {path} is missing: run scripts/bench.sh (or `cargo bench -p auth-core --bench hot_paths`)")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1e6


def table_rows(bench_dir, name, how):
    """The cells of every row of the Markdown table in `bench_dir/name`."""
    path = os.path.join(bench_dir, name)
    if not os.path.exists(path):
        sys.exit(f"cost.py: {path} is missing: run {how}")
    with open(path) as f:
        return [[c.strip() for c in line.strip().strip("|").split("|")] for line in f if line.startswith("|")]


def measured_calls(bench_dir):
    """DynamoDB calls per operation, from the call counter's table."""
    rows = table_rows(bench_dir, "calls.md", "scripts/bench.sh (or the e2e test calls_per_operation)")
    return {cells[0]: int(cells[1]) for cells in rows if len(cells) > 2 and cells[1].isdigit()}


def init_ms(bench_dir):
    """Median init (ms) per function from lambda_init's table; the figure a cold start bills."""
    medians = {}
    for cells in table_rows(bench_dir, "lambda_init.md", "scripts/bench.sh"):
        if len(cells) > 2 and re.fullmatch(r"[0-9.]+", cells[1]):
            medians.setdefault(cells[0].split(",")[0].split(" (")[0], float(cells[1]))
    return medians


def per_request(op, cpu_ms, args):
    """(Lambda $, DynamoDB $, billed ms) of one request of `op`."""
    share = min(1.0, op["memory"] / FULL_VCPU_MB)
    ms = cpu_ms / share + op["round_trips"] * args.dynamodb_ms
    billed = math.ceil(max(ms, op.get("floor_ms", 0), 1))
    gb_s = billed / 1000 * op["memory"] / 1024
    lam = gb_s * PRICES["lambda_gb_second"] + PRICES["lambda_request"]
    ddb = op["reads"] * PRICES["dynamodb_rru"] + (op["writes"] + op.get("index_writes", 0)) * PRICES["dynamodb_wru"]
    platform = args.log_bytes if op.get("platform_logs", True) else 0
    logs = (platform + op.get("audit", 0) * LOG_BYTES_AUDIT) / 1e9 * PRICES["logs_gb"]
    return lam, ddb, logs, billed


def monthly(mau, figures, args, cache_hit_rate):
    """Cost lines for `mau` active users in a month. `cache_hit_rate` is the share of API
    requests the Lambda authorizer is not invoked for: API Gateway's cache, or 1 when the
    HTTP API's own JWT authorizer checks the tokens against our JWKS (no Lambda at all)."""
    w = {k: getattr(args, k) for k in WORKLOAD}
    counts = {
        "login": w["logins"], "refresh": w["refreshes"], "logout": w["logouts"],
        "account": w["account_calls"], "authorizer": w["api_calls"] * (1 - cache_hit_rate), "email": w["emails"],
    }
    lines = {"Lambda": 0.0, "DynamoDB": 0.0, "API Gateway": 0.0, "CloudWatch Logs": 0.0, "Secrets Manager": 0.0, "SES": 0.0}
    for name, n in counts.items():
        requests = n * mau
        lam, ddb, logs, _ = figures["per_request"][name]
        lines["Lambda"] += requests * lam
        lines["DynamoDB"] += requests * ddb
        lines["CloudWatch Logs"] += requests * logs
        if name != "authorizer":  # the API's own requests are billed to it with or without us
            lines["API Gateway"] += requests * PRICES["api_gateway_request"]
        cold = requests * args.cold_start_rate
        memory = OPERATIONS[name]["memory"] / 1024
        lines["Lambda"] += cold * figures["init"][OPERATIONS[name]["function"]] / 1000 * memory * PRICES["lambda_gb_second"]
        if name in ("login", "refresh"):
            lines["Secrets Manager"] += cold * PRICES["secrets_manager_call"]
    lines["SES"] += counts["email"] * mau * PRICES["ses_message"]
    lines["DynamoDB"] += mau * STORED_BYTES_PER_USER / 1e9 * PRICES["dynamodb_gb_month"]
    lines["Secrets Manager"] += SECRETS * PRICES["secrets_manager_secret_month"]
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--criterion", default="target/criterion")
    p.add_argument("--bench", default="target/bench")
    p.add_argument("--plot", help="write a PNG of cost against MAU (needs matplotlib)")
    p.add_argument("--mau", default="10000,100000,1000000")
    p.add_argument("--dynamodb-ms", type=float, default=5.0)
    p.add_argument("--cold-start-rate", type=float, default=1 / 200)
    p.add_argument("--cache-hit-rate", type=float, default=0.5)
    p.add_argument("--log-bytes", type=float, default=LOG_BYTES_PLATFORM,
                   help="Lambda's own log bytes per invocation (0 with SystemLogLevel WARN)")
    for key, value in WORKLOAD.items():
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=float, default=value)
    args = p.parse_args()

    calls = measured_calls(args.bench)
    for name, op in OPERATIONS.items():
        if op["calls"] is None:
            continue
        if op["calls"] not in calls:
            sys.exit(f"cost.py: calls.md has no row {op['calls']!r}")
        if calls[op["calls"]] != op["reads"] + op["writes"]:
            sys.exit(f"cost.py: {name}: the counter measured {calls[op['calls']]} DynamoDB calls, the split here says "
                     f"{op['reads']} reads + {op['writes']} writes: update OPERATIONS")
    figures = {"init": init_ms(args.bench), "per_request": {}, "cpu": {}}
    for op in OPERATIONS.values():
        if op["function"] not in figures["init"]:
            sys.exit(f"cost.py: lambda_init.md has no row for {op['function']}")
    for name, op in OPERATIONS.items():
        cpu = sum(criterion_ms(args.criterion, b) for b in op["cpu"])
        figures["cpu"][name] = cpu
        figures["per_request"][name] = per_request(op, cpu, args)

    print("Per request (measured CPU, billed duration at the function's memory):\n")
    print("| operation | memory (MB) | CPU (ms, measured) | DynamoDB reads + writes (+ index writes) | calls counted | billed ms | $ per million (Lambda, DynamoDB, logs) |")
    print("|---|---|---|---|---|---|---|")
    for name, op in OPERATIONS.items():
        lam, ddb, logs, billed = figures["per_request"][name]
        counted = "yes" if op["calls"] else "no (design)"
        print(f"| {name} | {op['memory']} | {figures['cpu'][name]:.3f} | {op['reads']} + {op['writes']} (+{op.get('index_writes', 0)}) | "
              f"{counted} | {billed} | ${(lam + ddb + logs) * 1e6:,.2f} |")
    workload = ", ".join(f"{k.replace('_', ' ')} {getattr(args, k):g}" for k in WORKLOAD)
    print(f"\nPer active user and month: {workload}; authorizer cache hit rate {args.cache_hit_rate:g}; "
          f"DynamoDB {args.dynamodb_ms:g} ms a round trip; a cold start per {1 / args.cold_start_rate:g} requests.\n")

    maus = [int(m) for m in args.mau.split(",")]
    scenarios = {
        "Lambda authorizer, no cache": 0.0,
        f"Lambda authorizer, cache ({args.cache_hit_rate:.0%} hits)": args.cache_hit_rate,
        "HTTP API JWT authorizer": 1.0,
    }
    print("| monthly active users | " + " | ".join(f"this stack: {k}" for k in scenarios)
          + " | of which Lambda / DynamoDB / API Gateway / Logs / Secrets Manager / SES (cache) | Cognito Lite | Cognito Essentials | Auth0 |")
    print("|---" * (len(scenarios) + 5) + "|")
    for mau in maus:
        totals = [sum(monthly(mau, figures, args, rate).values()) for rate in scenarios.values()]
        split = " / ".join(f"${v:,.0f}" for v in monthly(mau, figures, args, args.cache_hit_rate).values())
        peers = [f"${tiered(mau, bands):,.0f}" if mau <= MODELLED_MAU else "not modelled" for bands in COGNITO.values()]
        auth0 = "$0 (Free plan)" if mau <= AUTH0_FREE_MAU else "not priced in text (sales)"
        print(f"| {mau:,} | " + " | ".join(f"${t:,.0f}" for t in totals) + f" | {split} | "
              + " | ".join(peers) + f" | {auth0} |")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = sorted(set([10_000 * 10 ** (i / 4) for i in range(9)] + maus))
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for label, rate in scenarios.items():
            ax.plot(grid, [sum(monthly(m, figures, args, rate).values()) for m in grid], label=f"this stack: {label}")
        # The peers cost $0 up to their free 10,000 MAU, which a log axis cannot show.
        paid = [m for m in sorted(set(grid + [11_000, 12_500, 15_000])) if 10_000 < m <= MODELLED_MAU]
        for key, bands in COGNITO.items():
            ax.plot(paid, [tiered(m, bands) for m in paid], label=key + " ($0 up to 10,000 MAU)", linestyle="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("monthly active users")
        ax.set_ylabel("US$ per month (us-east-1)")
        ax.set_title("Cost per month against active users")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
