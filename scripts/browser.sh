#!/usr/bin/env bash
# The browser client (client/): its build (which prints its size), its unit tests, then the
# demo page in real Chromium against the real stack: the emulator, `cargo lambda watch` and
# the demo page, each on a free loopback port, with 5 s access tokens. Stops everything it
# started whatever happens. Installs what it needs: Debian's chromium (apt) when missing,
# and client/'s npm packages (npm ci, from the committed lock file). Extra arguments go to
# `node --test` (e.g. --test-name-pattern=cookie).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
export PATH="$VENV/bin:$PATH"

CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [[ -z "$CHROMIUM" ]]; then
  log "installing Debian's chromium"
  sudo=(); [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium >/dev/null
  CHROMIUM="$(command -v chromium)"
fi

ensure_client
log "client: unit tests"
(cd client && node --test dist/test/*.test.js)

emulator_port="$(free_port)" lambda_port="$(free_port)" demo_port="$(free_port)" foreign_port="$(free_port)" idp_port="$(free_port)"
artifacts="$ROOT/target/browser"
mkdir -p "$artifacts"

cleanup() {
  trap - EXIT INT TERM
  # A test that died while the emulator was paused (scenario 5) must not leave it stopped.
  if [[ -n "${EMULATOR_PID:-}" ]]; then kill -CONT "$EMULATOR_PID" 2>/dev/null || true; fi
  stop_all ${DEMO_PID:-} ${WATCH_PID:-} ${IDP_PID:-}
}
trap cleanup EXIT INT TERM

start_emulator "$emulator_port"
export_emulator_env "$emulator_port"
cargo build --locked --workspace --bins
export DEMO_USERNAME="${DEMO_USERNAME:-demo@example.com}" DEMO_PASSWORD="${DEMO_PASSWORD:-demo-password-change-me}"
# Sign-up open, from a sender local-setup verifies in the emulator's SES (it refuses others).
# Passkeys for the demo page's host. The authorizer asks for a second factor on one route,
# which the "route requiring MFA" scenario calls it for (no function serves it: only the
# authorizer's answer is checked).
export SIGNUP=open EMAIL_FROM=no-reply@example.com WEBAUTHN_RP_ID=localhost ROUTE_REQUIRE_MFA="POST /payments"
"$ROOT/target/debug/authctl" local-setup >/dev/null

# The functions as scripts/dev.sh runs them (their log, at info, is scanned for the tokens
# the tests saw at the end), with 5 s access tokens, so that a test sees
# several refreshes in seconds. The demo page is on http://localhost:<demo_port>: the same
# site as the API on http://localhost:<lambda_port> (a site ignores the port), so the
# SameSite=Strict cookie flows; Chromium counts http://localhost as secure, so a Secure
# cookie is kept. Only that origin is allowed: localhost:<foreign_port> serves the same page
# to show that CORS stops it. APP_URL, the origin the register function's e-mail links
# point at (/verify-email#token=..., /reset-password#token=...), is the demo page's too.
api="http://localhost:$lambda_port"
AUTH_PUBLIC_JWKS="$("$ROOT/target/debug/authctl" keys jwks)"
export AUTH_PUBLIC_JWKS AUTH_ISSUER="$api/lambda-url/discovery" AUTH_AUDIENCE=local-api \
  ALLOWED_ORIGINS="http://localhost:$demo_port" APP_URL="http://localhost:$demo_port" REFRESH_COOKIE_PATH=/lambda-url \
  ACCESS_TOKEN_TTL="${ACCESS_TOKEN_TTL:-5}" REFRESH_REUSE_GRACE="${REFRESH_REUSE_GRACE:-5}" RUST_LOG=info
# A real OpenID provider on loopback, offered by the federation function as "local" (the
# demo's "Sign in with Local IdP"), and the GitHub-shaped one as "github".
start_oidc_provider "$idp_port" "$api/lambda-url/federation/auth/oauth" "$artifacts/idp.log"
start_functions "$lambda_port" "$artifacts/functions.log"
DEMO_OAUTH_PROVIDERS="local=Local IdP,github=GitHub (local)" DEMO_API_URL="$api" node client/demo/serve.mjs "$demo_port" "$foreign_port" >"$artifacts/demo.log" 2>&1 &
DEMO_PID=$!

# The tests add every token they see; the log scan below looks for each in the functions' log.
printf '%s\n' "$DEMO_PASSWORD" >"$artifacts/secrets.txt"
log "browser tests: Chromium ($(timeout 20 "$CHROMIUM" --version 2>/dev/null | head -1)), demo on http://localhost:$demo_port"
started=$SECONDS
# Bounded like the warm-up: 3 min a scenario (they take seconds), 20 min in all
# (--foreground: a Ctrl-C still reaches node).
CHROMIUM="$CHROMIUM" API_URL="$api" DEMO_URL="http://localhost:$demo_port/" FOREIGN_URL="http://localhost:$foreign_port/" \
  EMULATOR_URL="$AWS_ENDPOINT_URL" EMULATOR_PID="$EMULATOR_PID" ARTIFACTS="$artifacts" \
  timeout --foreground -k 10 1200 node --test --test-concurrency=1 --test-timeout=180000 "$@" client/dist/e2e/browser.test.js ||
  fail_with_log "$artifacts/functions.log" "the browser tests failed or ran out of time"
log "browser tests took $((SECONDS - started)) s; screenshot: target/browser/signed-in.png"
python3 "$ROOT/scripts/scan_logs.py" "$artifacts/functions.log" "$artifacts/secrets.txt"
