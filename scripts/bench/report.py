"""Prints the verification table: our criterion medians (with their 95% interval) next to
the peers measured in the same run, with each peer's ratio to our authorizer path.

Usage: report.py CRITERION_DIR PEERS_JSONL"""
import json
import statistics
import sys

criterion_dir, peers_path = sys.argv[1], sys.argv[2]


def ours(bench_id):
    with open(f"{criterion_dir}/{bench_id}/new/estimates.json") as f:
        median = json.load(f)["median"]
    interval = median["confidence_interval"]
    return median["point_estimate"], interval["lower_bound"], interval["upper_bound"]


rows = [
    ("ours: bare HMAC-SHA256 of the signing input (floor)", "hmac_sha256_floor"),
    ("jsonwebtoken::decode alone, our settings (the library floor)", "jsonwebtoken_decode_only"),
    ("ours: verify (header, key pin, signature, typed claims, time)", "verify"),
    ("ours: authorizer verify + policy (event fields read, response out)", "authorizer_verify_and_policy"),
    ("ours: authorizer handler (event JSON text in, response JSON text out)", "authorizer_handler"),
]
print("| verifier (HS256, same tokens, same key) | median ns/op | spread | peer / ours (verify + policy) |")
print("|---|---|---|---|")
measured = {bench_id: ours(bench_id) for _, bench_id in rows}
reference = measured["authorizer_verify_and_policy"][0]
for label, bench_id in rows:
    median, low, high = measured[bench_id]
    print(f"| {label} | {median:,.0f} | {low:,.0f}–{high:,.0f} (95% CI) | |")
with open(peers_path) as f:
    peers = [json.loads(line) for line in f if line.strip()]
for peer in sorted(peers, key=lambda p: statistics.median(p["ns_per_op"])):
    runs = peer["ns_per_op"]
    median = statistics.median(runs)
    print(f"| {peer['name']} | {median:,.0f} | {min(runs):,.0f}–{max(runs):,.0f} (runs) | {median / reference:.1f}× |")
print()
print("| CPU work, no network | median |")
print("|---|---|")
for label, bench_id in [("issue a token pair (access JWT + refresh token + hash)", "issue_token_pair"), ("one rotation (parse, chain step, 2 hashes, new access JWT)", "rotation_cpu"), ("argon2id hash (m=19456, t=2, p=1)", "argon2id/hash"), ("argon2id verify", "argon2id/verify")]:
    median = ours(bench_id)[0]
    value = f"{median / 1e6:.1f} ms" if median > 1e6 else f"{median / 1e3:.2f} µs"
    print(f"| {label} | {value} |")
