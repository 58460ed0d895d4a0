#!/usr/bin/env bash
# Every check, as CI runs it: formatting, clippy with warnings as errors, unit tests,
# end-to-end tests against the emulator, and the SAM template lint. Installs what it needs
# (a project-local venv with moto, cargo-lambda and cfn-lint) on first run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
started=$SECONDS

ensure_venv

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

log "unit tests"
cargo test --locked --workspace --exclude e2e

"$ROOT/scripts/e2e.sh"

if [[ -f template.yaml ]]; then
  log "cfn-lint template.yaml"
  "$VENV/bin/cfn-lint" template.yaml
fi

log "all checks passed in $((SECONDS - started)) s"
