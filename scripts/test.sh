#!/usr/bin/env bash
# Every check, as CI runs it: formatting, clippy with warnings as errors, unit tests (the
# session protocol's model check among them), end-to-end tests against the emulator, the
# browser client's unit tests and its demo in real Chromium (scripts/browser.sh), the HTTP
# API fuzzed from docs/openapi.yaml by schemathesis (scripts/api_fuzz.sh), the SAM
# template lint, and (in CI, or with
# PACKAGE=1) the README's deploy build (`sam build`, arm64) and its zip sizes. Installs
# what it needs (a project-local venv with moto, cargo-lambda, cfn-lint and the SAM CLI;
# client/'s npm packages; Debian's chromium) on first run.
set -euo pipefail
# Nothing here reads input: every tool gets an empty stdin, never a closed one (cfn-lint
# fails on a closed stdin) nor a terminal or pipe that could be waited on.
exec </dev/null
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
started=$SECONDS
results="$ROOT/target/test-results.txt"
mkdir -p "$ROOT/target" && : >"$results"

ensure_venv

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

log "unit tests"
cargo test --locked --workspace --exclude e2e 2>&1 | tee -a "$results"

"$ROOT/scripts/e2e.sh" 2>&1 | tee -a "$results"

"$ROOT/scripts/browser.sh" 2>&1 | tee -a "$results"

"$ROOT/scripts/api_fuzz.sh" 2>&1 | tee -a "$results"

log "cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml

# The arm64 release build takes ~10 minutes on 2 cores: CI runs it, locally opt in.
if [[ "${CI:-}" == "true" || "${PACKAGE:-}" == "1" ]]; then
  "$ROOT/scripts/package.sh"
else
  log "skipping the arm64 release packaging (runs in CI; PACKAGE=1 to run it here)"
fi

log "all checks passed in $((SECONDS - started)) s"
# One plain closing line for whoever reads the end of the log.
# cargo's "test result:" lines, and node's "# pass N" / "# fail N" (client/).
awk '/^test result:/ { p += $4; f += $6 } /^# pass / { p += $3 } /^# fail / { f += $3 } END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
