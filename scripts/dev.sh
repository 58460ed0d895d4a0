#!/usr/bin/env bash
# Runs the whole service locally: the DynamoDB / Secrets Manager emulator (moto) on
# 127.0.0.1:$EMULATOR_PORT, tables + key set + demo user through `authctl local-setup`,
# then `cargo lambda watch` serving the eight functions (login, refresh, logout, authorizer,
# discovery, account, register, federation) on 127.0.0.1:$LAMBDA_PORT, and, when Node.js is
# installed, a real OpenID provider on 127.0.0.1:$IDP_PORT (tests/oidc/, offered as "local")
# and a GitHub-shaped one on 127.0.0.1:$IDP_GITHUB_PORT (offered as "github")
# and the browser client's demo page on http://localhost:$DEMO_PORT. Sign-up is open, and the
# e-mail it sends stays in the emulator: `authctl mail list|show` reads it.
# Ctrl-C stops everything it started. Any configuration variable set in this script's
# environment (ALLOWED_ORIGINS, REFRESH_REUSE_GRACE, ...) reaches the functions.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

EMULATOR_PORT="${EMULATOR_PORT:-4566}"
LAMBDA_PORT="${LAMBDA_PORT:-9000}"
# The browser client's demo page (client/demo/), when Node.js is installed.
DEMO_PORT="${DEMO_PORT:-5173}"
# The local OpenID provider (tests/oidc/), when Node.js is installed.
IDP_PORT="${IDP_PORT:-4000}"
IDP_GITHUB_PORT="${IDP_GITHUB_PORT:-4001}"
# The discovery function's URL under `cargo lambda watch`, so that
# {issuer}/.well-known/openid-configuration resolves locally as it does behind the API.
export AUTH_ISSUER="${AUTH_ISSUER:-http://localhost:$LAMBDA_PORT/lambda-url/discovery}"
export AUTH_AUDIENCE="${AUTH_AUDIENCE:-local-api}"
export ALLOWED_ORIGINS="${ALLOWED_ORIGINS:-http://localhost:$DEMO_PORT,http://127.0.0.1:$DEMO_PORT}"
# The local function URLs live under /lambda-url/<name>/: scope the cookie to them.
export REFRESH_COOKIE_PATH="${REFRESH_COOKIE_PATH:-/lambda-url}"
export DEMO_USERNAME="${DEMO_USERNAME:-demo@example.com}"
export DEMO_PASSWORD="${DEMO_PASSWORD:-demo-password-change-me}"
# Sign-up and reset by e-mail: links lead to the demo page; the sender is verified in the
# emulator's SES by local-setup, and what is "sent" is kept there for `authctl mail`.
export SIGNUP="${SIGNUP:-open}"
export APP_URL="${APP_URL:-http://localhost:$DEMO_PORT}"
export EMAIL_FROM="${EMAIL_FROM:-no-reply@example.com}"
# Passkeys for the pages on http://localhost (a browser treats localhost as secure).
export WEBAUTHN_RP_ID="${WEBAUTHN_RP_ID:-localhost}"
export RUST_LOG="${RUST_LOG:-info}"

ensure_venv
export PATH="$VENV/bin:$PATH"

if ! python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $EMULATOR_PORT)) == 0)"; then
  echo "port $EMULATOR_PORT is in use; set EMULATOR_PORT to a free port" >&2
  exit 1
fi

cleanup() {
  trap - EXIT INT TERM
  stop_all ${DEMO_PID:-} ${WATCH_PID:-} ${IDP_PID:-}
  log "stopped"
}
trap cleanup EXIT INT TERM

log "starting the emulator on 127.0.0.1:$EMULATOR_PORT"
start_emulator "$EMULATOR_PORT"
export_emulator_env "$EMULATOR_PORT"

log "building the functions and authctl"
cargo build --workspace --bins
"$ROOT/target/debug/authctl" local-setup
# The public JWKS deployed with the authorizer, as `template.yaml`'s PublicJwks does: its
# cold start then verifies without a fetch. Rerun this script after `authctl keys add`.
AUTH_PUBLIC_JWKS="$("$ROOT/target/debug/authctl" keys jwks)"
export AUTH_PUBLIC_JWKS
# Sign-in through another provider: a real one on loopback (any login name, any password).
if command -v npm >/dev/null; then
  mkdir -p .local
  start_oidc_provider "$IDP_PORT" "http://localhost:$LAMBDA_PORT/lambda-url/federation/auth/oauth" .local/idp.log "$IDP_GITHUB_PORT"
  log "OpenID provider: http://127.0.0.1:$IDP_PORT (offered as \"local\"); GitHub-shaped: $IDP_GITHUB_URL (\"github\")"
fi

base="http://localhost:$LAMBDA_PORT"
cat <<USAGE

Ready when cargo lambda prints that it is serving. Try (a cookie jar keeps the refresh cookie):

  # log in
  curl -si -c .local/jar -H 'content-type: application/json' \\
    -d '{"username":"$DEMO_USERNAME","password":"$DEMO_PASSWORD"}' $base/lambda-url/login/
  # keep the access token
  TOKEN=\$(curl -s -c .local/jar -H 'content-type: application/json' \\
    -d '{"username":"$DEMO_USERNAME","password":"$DEMO_PASSWORD"}' $base/lambda-url/login/ | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  # ask the authorizer (HTTP API event from functions/authorizer/fixtures/)
  sed "s/REPLACE_WITH_ACCESS_TOKEN/\$TOKEN/g" functions/authorizer/fixtures/http-api-request.json \\
    | curl -s -d @- $base/2015-03-31/functions/authorizer/invocations
  # rotate the refresh token (the jar is updated with the successor)
  curl -si -b .local/jar -c .local/jar -X POST $base/lambda-url/refresh/
  # your live sessions, and ending one by id (the access token as Bearer)
  curl -s -H "authorization: Bearer \$TOKEN" $base/lambda-url/account/auth/sessions
  curl -si -X DELETE -H "authorization: Bearer \$TOKEN" $base/lambda-url/account/auth/sessions/<session_id>
  # sign up, read the verification e-mail the emulator kept, and use its link's token
  curl -si -H 'content-type: application/json' \
    -d '{"username":"me@example.com","password":"correct horse battery staple"}' $base/lambda-url/register/auth/signup
  AWS_ENDPOINT_URL=http://127.0.0.1:$EMULATOR_PORT target/debug/authctl mail show   # the newest message, its link written out
  curl -si -H 'content-type: application/json' \
    -d '{"token":"<token from the link>","password":"correct horse battery staple"}' $base/lambda-url/register/auth/verify-email
  # forgot password: a reset link by e-mail, then a new password with its token
  curl -si -H 'content-type: application/json' -d '{"username":"me@example.com"}' \
    $base/lambda-url/register/auth/password/forgot
  curl -si -H 'content-type: application/json' \
    -d '{"token":"<token>","new_password":"a new long passphrase"}' $base/lambda-url/register/auth/password/reset
  # log out (cookie cleared, session revoked)
  curl -si -b .local/jar -c .local/jar -X POST $base/lambda-url/logout/
  # the discovery document and the public JWKS third parties verify tokens with
  curl -si $AUTH_ISSUER/.well-known/openid-configuration
  curl -si $AUTH_ISSUER/.well-known/jwks.json

USAGE
mkdir -p .local

# The browser client's demo page. Open it as http://localhost:$DEMO_PORT, not 127.0.0.1:
# localhost:$DEMO_PORT and localhost:$LAMBDA_PORT are one site, so the SameSite=Strict
# refresh cookie flows (see the README's "Browser apps").
if command -v npm >/dev/null; then
  ensure_client
  DEMO_OAUTH_PROVIDERS="${OAUTH_PROVIDERS:+local=Local IdP,github=GitHub (local)}" DEMO_API_URL="$base" node client/demo/serve.mjs "$DEMO_PORT" &
  DEMO_PID=$!
  log "demo page: http://localhost:$DEMO_PORT/ (sign in as $DEMO_USERNAME)"
else
  log "no demo page: install Node.js 20+ to get it"
fi

# --disable-cors: watch's own CORS layer would reflect any Origin with credentials and
# hide the functions' Origin and CORS rules.
cargo lambda watch --disable-cors --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" &
WATCH_PID=$!
wait "$WATCH_PID"
