#!/usr/bin/env bash
# The first TLS handshake at cold start, and what aws-lc's CPU-jitter entropy costs it:
# serves the emulator over HTTPS (a throwaway local CA and a 127.0.0.1 certificate, trusted
# through SSL_CERT_FILE), then times the authorizer's and login's start-up (which fetch the
# key set over that TLS connection) as built by this project (no jitter) and as built with
# jitter (a second release build into target/jitter). Prints the lambda_init tables.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
tls="$ROOT/target/bench/tls"
mkdir -p "$tls" "$ROOT/target/bench/jitter-bins"

log "a local CA and a certificate for 127.0.0.1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls/ca.key" -out "$tls/ca.pem" -days 2 \
  -subj "/CN=bench local CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" >"$tls/ext.cnf"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -out "$tls/server.pem" -days 2 -extfile "$tls/ext.cnf" 2>/dev/null

log "release builds: as shipped (no jitter), and with jitter into target/jitter"
cargo build --locked --release -p login -p refresh -p logout -p authorizer
AWS_LC_SYS_NO_JITTER_ENTROPY=0 cargo build --locked --release -p authorizer -p login --target-dir "$ROOT/target/jitter"
cp "$ROOT/target/jitter/release/authorizer" "$ROOT/target/jitter/release/login" "$ROOT/target/bench/jitter-bins/"
# lambda_init starts all four; refresh and logout are the shipped builds in both rows.
cp "$ROOT/target/release/refresh" "$ROOT/target/release/logout" "$ROOT/target/bench/jitter-bins/"
cargo build --locked -p authctl -p e2e --example lambda_init

port="$(free_port)"
trap stop_emulator EXIT INT TERM
start_emulator "$port" "$tls"
export_emulator_env "$port"
export AWS_ENDPOINT_URL="https://127.0.0.1:$port" SSL_CERT_FILE="$tls/ca.pem"
"$ROOT/target/debug/authctl" local-setup >/dev/null

echo "## Cold start with the key fetch over TLS: as shipped (AWS_LC_SYS_NO_JITTER_ENTROPY=1)"
"$ROOT/target/debug/examples/lambda_init" "$ROOT/target/release" 20 1 | sed -n '1,4p'
echo "## The same with aws-lc's CPU-jitter entropy (authorizer and login rows)"
"$ROOT/target/debug/examples/lambda_init" "$ROOT/target/bench/jitter-bins" 20 1 | sed -n '1,4p'
