#!/usr/bin/env bash
# Runs the end-to-end tests (tests/) against a moto emulator started on a free loopback
# port, and stops the emulator afterwards whatever happens. Extra arguments go to the
# test binary (e.g. a test name filter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
port="$(free_port)"
trap stop_emulator EXIT INT TERM
start_emulator "$port"
export_emulator_env "$port"
cargo build --locked -p authctl
export AUTHCTL_BIN="$ROOT/target/debug/authctl"
log "end-to-end tests against the emulator on 127.0.0.1:$port"
cargo test --locked -p e2e -- "$@"
