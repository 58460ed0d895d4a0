#!/usr/bin/env bash
# Every performance figure in one run, printed as one table (and saved to
# target/bench/report.md): ES256 and EdDSA token verification next to the bare aws-lc
# signature check and to Node's jose, jsonwebtoken and aws-jwt-verify and Python's PyJWT
# on the same tokens; signing (login, refresh) per algorithm and argon2id CPU; AWS calls
# per operation; cold start (over HTTP and HTTPS) and peak RSS of the release binaries,
# the authorizer with and without keys in its environment and in strict revocation mode
# (with its time to denial, added latency and reads), next to a bare lambda_runtime
# binary started in the same run; login's init step by step; arm64 zip sizes; the cost per
# month at 10k / 100k / 1M active users next to Cognito and Auth0 (scripts/bench/cost.py,
# which also draws docs/cost.png). Installs the peers itself (npm, PyPI).
# Not part of scripts/test.sh.
#
# Everything is compiled first and nothing is compiled while a figure is taken: on a
# 2-core machine a build next to a benchmark would be measured with it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
started=$SECONDS
out="$ROOT/target/bench"
mkdir -p "$out" "$ROOT/.local/bench-node"
report="$out/report.md"

# The tools and the peers download while the host builds compile (the network is idle then).
install_tools_and_peers() {
  ensure_venv
  log "installing the peers: jose, jsonwebtoken, aws-jwt-verify (npm), PyJWT on cryptography (PyPI)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "PyJWT[crypto]==2.15.1" "cryptography==50.0.2" "matplotlib==3.10.8"
  (cd "$ROOT/.local/bench-node" && [[ -f package.json ]] || echo '{"private": true}' >package.json)
  npm install --silent --no-audit --no-fund --prefix "$ROOT/.local/bench-node" jose@6.2.18 jsonwebtoken@9.0.3 aws-jwt-verify@5.2.1 >/dev/null
  cp scripts/bench/verify_node.mjs "$ROOT/.local/bench-node/"
}
install_tools_and_peers &
installing=$!

log "building: criterion benches and the eight functions (release), the tools, arm64 zips"
# The measured binaries use the release profile, and so does the bare runtime they are
# compared with (an example of the authorizer crate: same dependencies, nothing rebuilt,
# one more link). The setup tool, the call counter and the local Runtime API are debug
# builds: they are not what is measured.
cargo bench --locked -p auth-core --bench hot_paths --no-run
cargo build --locked --release -p login -p refresh -p logout -p authorizer -p register -p account -p discovery -p federation
cargo build --locked --release -p authorizer --example bare_runtime
cargo build --locked --release -p login --example init_steps
bare="$ROOT/target/release/examples/bare_runtime"
cargo build --locked -p authctl
cargo build --locked -p e2e --example lambda_init
cargo test --locked -p e2e --no-run
wait "$installing"
"$ROOT/scripts/package.sh" | sed -n '/^function /,$p' >"$out/sizes.txt"
built=$SECONDS

log "Rust hot paths (criterion, release profile)"
cargo bench --locked -p auth-core --bench hot_paths -- --noplot
log "peers on the same token set"
: >"$out/peers.jsonl"
node "$ROOT/.local/bench-node/verify_node.mjs" "$out/tokens.json" | tee -a "$out/peers.jsonl"
"$VENV/bin/python" scripts/bench/verify_python.py "$out/tokens.json" | tee -a "$out/peers.jsonl"

trap stop_emulator EXIT INT TERM
port="$(free_port)"
start_emulator "$port"
export_emulator_env "$port"
log "AWS calls per operation (SDK interceptor, emulator on 127.0.0.1:$port)"
cargo test --locked -p e2e calls_per_operation -- --ignored --nocapture >/dev/null
log "strict revocation: time to denial, added latency, reads and their price (emulator on 127.0.0.1:$port)"
cargo test --locked -p e2e strict_revocation_figures -- --ignored --nocapture >/dev/null
log "cold start and peak RSS of the release binaries"
EMAIL_FROM=no-reply@example.com "$ROOT/target/debug/authctl" local-setup >/dev/null
"$ROOT/target/debug/examples/lambda_init" "$ROOT/target/release" 20 1000 "$bare" >"$out/lambda_init.md"
log "login's init, step by step (20 starts each way)"
"$VENV/bin/python" scripts/bench/init_steps.py "$ROOT/target/release/examples/init_steps" 20 >"$out/init_steps.md"
"$VENV/bin/python" scripts/bench/init_steps.py "$ROOT/target/release/examples/init_steps" 20 default-chains >"$out/init_steps_chains.md"
TRUST_ROOTS=system "$VENV/bin/python" scripts/bench/init_steps.py "$ROOT/target/release/examples/init_steps" 20 >"$out/init_steps_system.md"
stop_emulator

# The same start-up with the key fetch (and the DynamoDB warm-up) over HTTPS: the first TLS
# handshake, with a certificate from a throwaway local CA trusted through SSL_CERT_FILE (and
# TRUST_ROOTS=system: see export_emulator_env).
log "cold start with the first TLS handshake (emulator over HTTPS)"
make_local_tls "$out/tls"
port="$(free_port)"
start_emulator "$port" "$out/tls"
export_emulator_env "$port" "$out/tls"
EMAIL_FROM=no-reply@example.com "$ROOT/target/debug/authctl" local-setup >/dev/null
"$ROOT/target/debug/examples/lambda_init" "$ROOT/target/release" 20 0 "$bare" >"$out/lambda_init_tls.md"
stop_emulator

{
  echo "# Benchmark run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo
  echo "## Token verification and CPU work"
  echo
  "$VENV/bin/python" scripts/bench/report.py "$ROOT/target/criterion" "$out/peers.jsonl" "$out/floor_ratios.json"
  echo
  echo "## AWS calls per operation"
  echo
  cat "$out/calls.md"
  echo "## Strict revocation (REVOCATION_CHECK=session)"
  echo
  echo "In process against the emulator on loopback (a debug build; moto answers in milliseconds"
  echo "where DynamoDB in-region takes a few): time from each revocation to the first denied"
  echo "authorizer call, the latency a request adds, and reads per million API requests."
  echo
  cat "$out/strict.md"
  echo
  echo "## Cold start (process start to first Runtime API request, 20 starts each, in turn) and memory"
  echo
  echo "Emulator over HTTP on loopback:"
  echo
  cat "$out/lambda_init.md"
  echo
  echo "Emulator over HTTPS on loopback (the first TLS handshake included):"
  echo
  cat "$out/lambda_init_tls.md"
  echo
  echo "Login's init step by step, the SDK configured from the Lambda environment (as shipped):"
  echo
  cat "$out/init_steps.md"
  echo
  echo "The same with aws-config's default chains (as authctl configures itself):"
  echo
  cat "$out/init_steps_chains.md"
  echo
  echo "The same with TRUST_ROOTS=system (the system's trust store instead of the five compiled-in Amazon roots):"
  echo
  cat "$out/init_steps_system.md"
  echo
  echo "## Cost per month (scripts/bench/cost.py; the workload and prices are in its header)"
  echo
  "$VENV/bin/python" scripts/bench/cost.py --criterion "$ROOT/target/criterion" --bench "$out" --plot "$ROOT/docs/cost.png"
  echo
  echo "## arm64 release binaries"
  echo
  echo '```'
  cat "$out/sizes.txt"
  echo '```'
  echo
  echo "Builds took $((built - started)) s of this run, measurements $((SECONDS - built)) s."
} >"$report"
cat "$report"
log "benchmark finished in $((SECONDS - started)) s; saved to target/bench/report.md"
