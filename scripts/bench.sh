#!/usr/bin/env bash
# Every performance figure in one run, printed as one table (and saved to
# target/bench/report.md): token verification side by side with Node's jose and
# jsonwebtoken and Python's PyJWT on the same tokens; issuing, rotation and argon2id CPU;
# AWS calls per operation; cold start and peak RSS of the release binaries; arm64 zip
# sizes. Installs the peers itself (npm, PyPI). Not part of scripts/test.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
started=$SECONDS
ensure_venv
out="$ROOT/target/bench"
mkdir -p "$out" "$ROOT/.local/bench-node"
report="$out/report.md"

log "installing the peers: jose, jsonwebtoken (npm), PyJWT (PyPI)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "PyJWT==2.15.1"
(cd "$ROOT/.local/bench-node" && [[ -f package.json ]] || echo '{"private": true}' >package.json)
npm install --silent --no-audit --no-fund --prefix "$ROOT/.local/bench-node" jose@6.2.18 jsonwebtoken@9.0.3 >/dev/null
cp scripts/bench/verify_node.mjs "$ROOT/.local/bench-node/"

log "Rust hot paths (criterion, release profile)"
cargo bench --locked -p auth-core --bench hot_paths -- --noplot
log "peers on the same token set"
: >"$out/peers.jsonl"
node "$ROOT/.local/bench-node/verify_node.mjs" "$out/tokens.json" | tee -a "$out/peers.jsonl"
"$VENV/bin/python" scripts/bench/verify_python.py "$out/tokens.json" | tee -a "$out/peers.jsonl"

port="$(free_port)"
trap stop_emulator EXIT INT TERM
start_emulator "$port"
export_emulator_env "$port"
log "AWS calls per operation (SDK interceptor, emulator on 127.0.0.1:$port)"
cargo test --locked -p e2e calls_per_operation -- --ignored --nocapture >/dev/null

log "cold start and peak RSS of the release binaries"
# Only the measured binaries need the release profile; the setup tool and the local
# Runtime API do not (the latter only answers on loopback), so they stay debug builds.
cargo build --locked --release -p login -p refresh -p logout -p authorizer
cargo build --locked -p authctl
"$ROOT/target/debug/authctl" local-setup >/dev/null
cargo run --locked -q -p e2e --example lambda_init -- "$ROOT/target/release" 20 1000 >"$out/lambda_init.md"

log "arm64 release zips"
"$ROOT/scripts/package.sh" | tail -n 6 >"$out/sizes.txt"

{
  echo "# Benchmark run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo
  echo "## Token verification and CPU work"
  echo
  "$VENV/bin/python" scripts/bench/report.py "$ROOT/target/criterion" "$out/peers.jsonl"
  echo
  echo "## AWS calls per operation"
  echo
  cat "$out/calls.md"
  echo "## Cold start (process start to first Runtime API request, 20 starts) and memory"
  echo
  cat "$out/lambda_init.md"
  echo
  echo "## arm64 release binaries"
  echo
  echo '```'
  cat "$out/sizes.txt"
  echo '```'
} >"$report"
cat "$report"
log "benchmark finished in $((SECONDS - started)) s; saved to target/bench/report.md"
