#!/usr/bin/env bash
# Runs the end-to-end tests (tests/) against a moto emulator started on a free loopback
# port, and stops the emulator afterwards whatever happens. Extra arguments go to the
# test binary (e.g. a test name filter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
# The real OpenID provider of the federation tests (tests/tests/e2e/federation.rs).
ensure_oidc_provider
port="$(free_port)"
trap stop_emulator EXIT INT TERM
start_emulator "$port"
export_emulator_env "$port"
cargo build --locked -p authctl
export AUTHCTL_BIN="$ROOT/target/debug/authctl"
# The third-party verifier (PyJWT) the discovery tests run.
export E2E_PYTHON="$VENV/bin/python"
# Every log line of the suite, and every secret it handled, for the leak scan below.
export E2E_LOG_FILE="$ROOT/target/e2e-logs.jsonl" E2E_SECRETS_FILE="$ROOT/target/e2e-secrets.txt"
: >"$E2E_LOG_FILE"; : >"$E2E_SECRETS_FILE"
log "end-to-end tests against the emulator on 127.0.0.1:$port"
cargo test --locked -p e2e -- "$@"
python3 "$ROOT/scripts/scan_logs.py" "$E2E_LOG_FILE" "$E2E_SECRETS_FILE"
