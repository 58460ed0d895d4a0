"""Fails if any secret the end-to-end suite handled appears in any log line it produced.

Usage: scan_logs.py LOG_FILE SECRETS_FILE. The secrets file holds one secret per line
(tokens, their secret parts, hashes, passwords, keys); this prints only their count and,
for a leak, a short prefix, never a whole secret."""
import sys

log_path, secrets_path = sys.argv[1], sys.argv[2]
with open(log_path, encoding="utf-8", errors="replace") as f:
    lines = f.read().splitlines()
with open(secrets_path, encoding="utf-8") as f:
    # Very short values could match by chance; every real secret here is long.
    secrets = {s for s in f.read().splitlines() if len(s) >= 12}
if not lines or not secrets:
    sys.exit(f"log scan: nothing to scan ({len(lines)} log lines, {len(secrets)} secrets): the suite did not record")
leaks = [(secret, n) for n, line in enumerate(lines, 1) for secret in secrets if secret in line]
if leaks:
    for secret, n in leaks[:10]:
        print(f"log scan: line {n} of {log_path} contains a secret starting {secret[:6]}...", file=sys.stderr)
    sys.exit(f"log scan: {len(leaks)} leaks")
print(f"log scan: {len(lines)} log lines, {len(secrets)} secrets, no secret in any line")
