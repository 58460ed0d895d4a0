#!/usr/bin/env bash
# What aws-lc's CPU-jitter entropy would cost the first TLS handshake at cold start (the
# check behind AWS_LC_SYS_NO_JITTER_ENTROPY=1 in .cargo/config.toml): serves the emulator
# over HTTPS (a throwaway local CA, trusted through SSL_CERT_FILE), then times the
# authorizer's and login's start-up (which fetch the key set over that TLS connection) as
# shipped and as built with jitter (a second release build into target/jitter). Not part of
# scripts/bench.sh, which measures the shipped binaries over HTTPS too.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
tls="$ROOT/target/bench/tls"
mkdir -p "$tls" "$ROOT/target/bench/jitter-bins"

log "a local CA and a certificate for 127.0.0.1"
make_local_tls "$tls"

log "release builds: as shipped (no jitter), and with jitter into target/jitter"
cargo build --locked --release -p login -p refresh -p logout -p authorizer
AWS_LC_SYS_NO_JITTER_ENTROPY=0 cargo build --locked --release -p authorizer -p login --target-dir "$ROOT/target/jitter"
cp "$ROOT/target/jitter/release/authorizer" "$ROOT/target/jitter/release/login" "$ROOT/target/bench/jitter-bins/"
# lambda_init starts all four; refresh and logout are the shipped builds in both rows.
cp "$ROOT/target/release/refresh" "$ROOT/target/release/logout" "$ROOT/target/bench/jitter-bins/"
cargo build --locked -p authctl
cargo build --locked -p e2e --example lambda_init

port="$(free_port)"
trap stop_emulator EXIT INT TERM
start_emulator "$port" "$tls"
export_emulator_env "$port" "$tls"
"$ROOT/target/debug/authctl" local-setup >/dev/null

echo "## Cold start with the key fetch over TLS: as shipped (AWS_LC_SYS_NO_JITTER_ENTROPY=1)"
"$ROOT/target/debug/examples/lambda_init" "$ROOT/target/release" 20 0
echo "## The same with aws-lc's CPU-jitter entropy (authorizer and login rows)"
"$ROOT/target/debug/examples/lambda_init" "$ROOT/target/bench/jitter-bins" 20 0
