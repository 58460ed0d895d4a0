#!/usr/bin/env bash
# The HTTP API fuzzed from its description by a tool nobody here wrote: schemathesis (PyPI)
# reads docs/openapi.yaml and sends every operation generated and mutated requests (its
# examples, coverage, fuzzing and stateful phases: login -> refresh -> logout through the
# description's links), against the real functions: the emulator, `cargo lambda watch`,
# scripts/local_gateway.py (API Gateway's paths) and the OpenID providers of tests/oidc/,
# each on a free loopback port. Every answer
# is checked: no 5xx, the status documented, the body and headers as described, and what
# the description says is invalid refused. A fixed seed and API_FUZZ_EXAMPLES examples per
# operation (25 here; e.g. API_FUZZ_EXAMPLES=500 for a longer run) keep it deterministic and
# within CI's budget. Stops everything it started, whatever happens. Part of scripts/test.sh;
# extra arguments go to `schemathesis run`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
ensure_fuzz_venv
export PATH="$VENV/bin:$PATH"

emulator_port="$(free_port)" lambda_port="$(free_port)" gateway_port="$(free_port)"
artifacts="$ROOT/target/api-fuzz"
mkdir -p "$artifacts"

cleanup() {
  trap - EXIT INT TERM
  stop_all ${GATEWAY_PID:-} ${WATCH_PID:-} ${IDP_PID:-}
}
trap cleanup EXIT INT TERM

start_emulator "$emulator_port"
export_emulator_env "$emulator_port"
cargo build --locked --workspace --bins
export DEMO_USERNAME=demo@example.com DEMO_PASSWORD=demo-password-change-me
# Everything on: sign-up, passkeys, both ways of carrying the refresh token (links can carry
# a body token; a cookie marked Secure does not travel over http://127.0.0.1), the cookie
# scoped to API Gateway's /auth.
export SIGNUP=open EMAIL_FROM=no-reply@example.com APP_URL=http://localhost:1 WEBAUTHN_RP_ID=localhost \
  REFRESH_TOKEN_DELIVERY=both REFRESH_COOKIE_PATH=/auth ALLOWED_ORIGINS=http://localhost:1 \
  AUTH_ISSUER="http://127.0.0.1:$gateway_port" AUTH_AUDIENCE=local-api RUST_LOG=warn
"$ROOT/target/debug/authctl" local-setup >/dev/null
# Sign-in through other providers: the real ones of tests/oidc/ on loopback, offered as
# `local` and `github` (the federation function's redirects are described too).
start_oidc_provider "$(free_port)" "http://127.0.0.1:$gateway_port/auth/oauth" "$artifacts/idp.log"
start_functions "$lambda_port" "$artifacts/functions.log"

python3 "$ROOT/scripts/local_gateway.py" --port "$gateway_port" --lambda-port "$lambda_port" >"$artifacts/gateway.log" 2>&1 &
GATEWAY_PID=$!
until grep -q "^listening on" "$artifacts/gateway.log"; do
  kill -0 "$GATEWAY_PID" 2>/dev/null || fail_with_log "$artifacts/gateway.log" "the local gateway exited"
  sleep 0.1
done

# The account endpoints take a bearer token no link can set: another user's (the demo user's
# logins are for the stateful phase, see scripts/fuzz/hooks.py).
api="http://127.0.0.1:$gateway_port"
fuzz_user=fuzz@example.com fuzz_password=fuzz-password-change-me
printf '%s\n' "$fuzz_password" | "$ROOT/target/debug/authctl" user add "$fuzz_user" >/dev/null
token="$(curl --noproxy '*' -sf -m 60 -H 'content-type: application/json' \
  -d "{\"username\":\"$fuzz_user\",\"password\":\"$fuzz_password\"}" "$api/auth/login" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"

# Every check but two that contradict the API by design: `unsupported_method` wants 405 for a
# method no route has, where API Gateway (and so the local gateway) answers 404; and
# `positive_data_acceptance` takes any 400 to a schema-valid body for a refusal of valid
# data, where ours include refusals no schema can state (a weak password, a used link, a
# body with neither code nor recovery_code). No example database, and run from target/: every
# run starts from the seed alone, and nothing is written in the tree.
schemathesis() {
  (cd "$artifacts" && "$FUZZ_VENV/bin/schemathesis" --config-file "$ROOT/scripts/fuzz/schemathesis.toml" \
    run "$ROOT/docs/openapi.yaml" --url "$api" \
    --header "Authorization: Bearer $token" \
    --checks all --exclude-checks unsupported_method,positive_data_acceptance \
    --seed 1 --max-examples "${API_FUZZ_EXAMPLES:-25}" --generation-database none \
    --request-timeout 30 --report junit --report-dir "$artifacts" --no-color "$@") ||
    fail_with_log "$artifacts/functions.log" "schemathesis found failures (above)"
}
started=$SECONDS
log "schemathesis: docs/openapi.yaml against $api, every phase, valid and invalid data"
schemathesis "$@"
# The stateful phase again with valid data only, some logins as the demo user
# (scripts/fuzz/hooks.py), so that the links are followed from real sessions.
log "schemathesis: the links from real sessions (stateful phase, valid data)"
PYTHONPATH="$ROOT/scripts/fuzz" SCHEMATHESIS_HOOKS=hooks schemathesis --phases stateful --mode positive "$@"
log "schemathesis took $((SECONDS - started)) s"
