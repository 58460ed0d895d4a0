"""Prints the verification tables, one per algorithm: ours from the paired measurement of
hot_paths.rs (alternating batches of every operation, which holds still under a shared
machine's bursts of load, where criterion's medians, taken one benchmark after another,
drift apart; criterion's median and 95% interval are shown next to it), each of our rows'
multiple of the bare aws-lc signature check (the floor), and the peers measured in the
same run on the same tokens with their ratio to our authorizer's verify + policy; then
whether the targets are met, and the signing and password CPU costs.

Usage: report.py CRITERION_DIR PEERS_JSONL FLOOR_RATIOS_JSON"""
import json
import statistics
import sys

criterion_dir, peers_path, ratios_path = sys.argv[1], sys.argv[2], sys.argv[3]
ALGORITHMS = ["ES256", "EdDSA"]
SIGNING = ["ES256", "EdDSA", "RS256"]
# Targets of the issue: verify + policy within 1.2x of the bare signature check, and
# faster than every peer.
FLOOR_TARGET = 1.2


def ours(bench_id):
    with open(f"{criterion_dir}/{bench_id}/new/estimates.json") as f:
        median = json.load(f)["median"]
    interval = median["confidence_interval"]
    return median["point_estimate"], interval["lower_bound"], interval["upper_bound"]


def micros(ns):
    return f"{ns / 1e3:.1f} µs"


rows = [
    ("aws-lc signature check alone, key parsed once (the floor)", "verify_floor"),
    ("aws-lc signature check alone, key parsed per call", "verify_floor_key_per_call"),
    ("jsonwebtoken::decode alone, our settings", "jsonwebtoken_decode_only"),
    ("ours: verify (header, key pin, signature, typed claims, time)", "verify"),
    ("ours: authorizer verify + policy (event fields read, response out)", "authorizer_verify_and_policy"),
    ("ours: authorizer handler (event JSON text in, response JSON text out)", "authorizer_handler"),
]
with open(peers_path) as f:
    peers = [json.loads(line) for line in f if line.strip()]
with open(ratios_path) as f:
    paired = {alg: {row["name"]: row for row in rows} for alg, rows in json.load(f).items()}
verdicts = []
for alg in ALGORITHMS:
    measured = {bench_id: ours(f"{alg}/{bench_id}") for _, bench_id in rows}
    reference = paired[alg]["authorizer_verify_and_policy"]["ns_per_op"]
    print(f"| verifier ({alg}, same tokens, same key) | median ns/op | criterion median (95% CI); peers: range of runs | × floor | peer / ours (verify + policy) |")
    print("|---|---|---|---|---|")
    for label, bench_id in rows:
        median, low, high = measured[bench_id]
        row = paired[alg][bench_id]
        print(f"| {label} | {row['ns_per_op']:,.0f} | {median:,.0f} ({low:,.0f}–{high:,.0f}) | {row['ratio_to_floor']:.2f} | |")
    timed = [p for p in peers if p["alg"] == alg and "ns_per_op" in p]
    for peer in sorted(timed, key=lambda p: statistics.median(p["ns_per_op"])):
        runs = peer["ns_per_op"]
        median = statistics.median(runs)
        print(f"| {peer['name']} | {median:,.0f} | {min(runs):,.0f}–{max(runs):,.0f} | | {median / reference:.2f}× |")
    for peer in (p for p in peers if p["alg"] == alg and "unsupported" in p):
        print(f"| {peer['name']} | cannot verify {alg}: \"{peer['unsupported']}\" | | | |")
    print()
    fastest = min(timed, key=lambda p: statistics.median(p["ns_per_op"]))
    fastest_median = statistics.median(fastest["ns_per_op"])
    ours_paired, floor_paired = paired[alg]["authorizer_verify_and_policy"], paired[alg]["verify_floor"]
    ratio = ours_paired["ratio_to_floor"]
    verdicts.append(
        (
            f"{alg} verify + policy ≤ {FLOOR_TARGET}× the aws-lc floor",
            f"{ratio:.2f}× (paired: {micros(ours_paired['ns_per_op'])} against {micros(floor_paired['ns_per_op'])})",
            "yes" if ratio <= FLOOR_TARGET else "no",
        )
    )
    verdicts.append(
        (
            f"{alg} verify + policy faster than every peer",
            f"fastest peer {fastest['name']}: {micros(fastest_median)} ({fastest_median / reference:.2f}× ours)",
            "yes" if reference < fastest_median else "no",
        )
    )

print("| target | measured | met? |")
print("|---|---|---|")
for target, value, met in verdicts:
    print(f"| {target} | {value} | {met} |")
print()
print("| CPU work, no network | " + " | ".join(SIGNING) + " |")
print("|---|" + "---|" * len(SIGNING))
for label, bench_id in [
    ("aws-lc signature alone, key parsed once (the floor)", "sign_floor"),
    ("login: issue a token pair (access JWT signed + refresh token + hash)", "issue_token_pair"),
    ("refresh: one rotation (parse, chain step, 2 hashes, access JWT signed)", "rotation_cpu"),
]:
    print(f"| {label} | " + " | ".join(micros(ours(f"{alg}/{bench_id}")[0]) for alg in SIGNING) + " |")
print()
print("| password work | median |")
print("|---|---|")
for label, bench_id in [("argon2id hash (m=19456, t=2, p=1)", "argon2id/hash"), ("argon2id verify", "argon2id/verify")]:
    print(f"| {label} | {ours(bench_id)[0] / 1e6:.1f} ms |")
print()
print("| second factor, CPU added to a login | median |")
print("|---|---|")
for label, bench_id in [
    ("TOTP code checked (±1 step: up to 3 HMAC-SHA-1)", "second_factor/totp_check"),
    ("recovery code hashed and compared with 10 stored", "second_factor/recovery_code_check"),
]:
    print(f"| {label} | {micros(ours(bench_id)[0])} |")
