# Shared by scripts/dev.sh, scripts/test.sh, scripts/e2e.sh, scripts/browser.sh and
# scripts/api_fuzz.sh: the project-local Python venv (moto, cargo-lambda, cfn-lint,
# aws-sam-cli, and PyJWT, the third-party verifier the end-to-end tests check our tokens and
# discovery documents with), the fuzzer's own venv, the DynamoDB/Secrets Manager emulator on
# loopback, the functions under `cargo lambda watch`, and the browser client's build.
# Source it; it defines functions and sets no options of the caller.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# Pinned so every machine and CI run the same tools. aws-sam-cli is what scripts/package.sh
# (and the README's deploy) builds with; it pins boto3 exactly, so moto runs on that boto3.
PY_PACKAGES=("moto[server]==5.2.5" "cargo-lambda==1.9.2" "cfn-lint==1.58.0" "aws-sam-cli==1.170.0" "pyjwt[crypto]==2.15.1")
# Schemathesis (scripts/api_fuzz.sh) in a venv of its own: its pins are not aws-sam-cli's.
FUZZ_VENV="$ROOT/.venv-fuzz"
FUZZ_PACKAGES=("schemathesis==4.32.5")

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Creates .venv and installs the tools once; later runs only check the stamp.
ensure_venv() { venv_with "$VENV" "${PY_PACKAGES[@]}"; }

# The fuzzer's venv (.venv-fuzz), the same way.
ensure_fuzz_venv() { venv_with "$FUZZ_VENV" "${FUZZ_PACKAGES[@]}"; }

# venv_with DIR PACKAGE...: a venv at DIR with the packages, installed once per list.
venv_with() {
  local dir="$1"
  shift
  local stamp="$dir/.installed-$(printf '%s ' "$@" | cksum | cut -d' ' -f1)"
  if [[ -f "$stamp" ]]; then return 0; fi
  log "installing $* into ${dir#"$ROOT"/}"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  touch "$stamp"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# export_emulator_env PORT [TLS_DIR]: points the SDK at the emulator on 127.0.0.1:PORT, over
# HTTPS trusting TLS_DIR/ca.pem when TLS_DIR is given (see start_emulator). Fake credentials
# and a region; real AWS is never contacted. Over HTTPS the functions trust the system store
# (TRUST_ROOTS=system: the local CA is not one of the compiled-in Amazon roots) reduced to
# that one certificate, about what the five compiled-in roots cost on Lambda.
export_emulator_env() {
  if [[ -n "${2:-}" ]]; then
    export AWS_ENDPOINT_URL="https://127.0.0.1:$1" SSL_CERT_FILE="$2/ca.pem" TRUST_ROOTS=system
    unset SSL_CERT_DIR
  else
    export AWS_ENDPOINT_URL="http://127.0.0.1:$1"
  fi
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
  export AWS_EC2_METADATA_DISABLED=true
  # Loopback never goes through a proxy a machine may set for the package registries.
  export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
}

# make_local_tls DIR: a throwaway local CA (DIR/ca.pem) and a certificate it signed for
# 127.0.0.1 (DIR/server.pem, DIR/server.key), for serving the emulator over HTTPS in the
# benchmarks. Clients trust it through SSL_CERT_FILE=DIR/ca.pem.
make_local_tls() {
  local dir="$1"
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 2 \
    -subj "/CN=bench local CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
  printf "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -out "$dir/server.pem" -days 2 -extfile "$dir/ext.cnf" 2>/dev/null
}

# start_emulator PORT [TLS_DIR]: starts moto on 127.0.0.1:PORT, waits until it answers, and
# sets EMULATOR_PID. With TLS_DIR (holding server.pem, server.key and the ca.pem that signed
# them) it serves HTTPS. The caller stops it with stop_emulator (use a trap).
start_emulator() {
  local port="$1" tls_dir="${2:-}" log_file="$ROOT/target/moto-$1.log"
  local tls_args=() probe=(curl -fsS -o /dev/null "http://127.0.0.1:$port/moto-api/data.json")
  if [[ -n "$tls_dir" ]]; then
    tls_args=(-c "$tls_dir/server.pem" -k "$tls_dir/server.key")
    probe=(curl -fsS -o /dev/null --cacert "$tls_dir/ca.pem" "https://127.0.0.1:$port/moto-api/data.json")
  fi
  mkdir -p "$(dirname "$log_file")"
  # moto with DynamoDB's per-item atomicity restored: see scripts/moto_server.py.
  "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" "${tls_args[@]}" >"$log_file" 2>&1 &
  EMULATOR_PID=$!
  for _ in $(seq 1 100); do
    if "${probe[@]}" 2>/dev/null; then return 0; fi
    if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then cat "$log_file" >&2; echo "moto_server exited" >&2; return 1; fi
    sleep 0.1
  done
  echo "moto_server did not answer on port $port" >&2
  return 1
}

stop_emulator() {
  if [[ -n "${EMULATOR_PID:-}" ]]; then stop_process "$EMULATOR_PID"; fi
  EMULATOR_PID=
}

# stop_all PID...: a test script's clean-up: each process (stop_process), then the emulator.
stop_all() {
  local pid
  for pid in "$@"; do
    stop_process "$pid"
  done
  stop_emulator
}

# stop_process PID: SIGTERM, and SIGKILL when it is still there 10 s later, so that a
# script's clean-up never waits for ever on a process that ignores the first.
stop_process() {
  local pid="$1"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

# start_functions PORT LOG: `cargo lambda watch` serving every function on 127.0.0.1:PORT
# with the caller's environment, never reloading them (a file written during a test would
# restart every function and fail the requests in flight), the log in LOG; sets WATCH_PID
# (stop it with stop_process). Then
# each function started by a first request, so that no test waits for a start. Every request
# is bounded: a function that dies while it starts leaves `cargo lambda watch` holding its
# request for ever (seen), so a dead start fails here at once, with the functions' log.
start_functions() {
  local port="$1" log_file="$2" api="http://localhost:$1" code deadline
  cargo lambda watch --ignore-changes --disable-cors --invoke-address 127.0.0.1 --invoke-port "$port" >"$log_file" 2>&1 &
  WATCH_PID=$!
  log "waiting for the functions on 127.0.0.1:$port"
  deadline=$((SECONDS + 300))
  until [[ "$(bounded_request -m 10 "$api/lambda-url/discovery/.well-known/jwks.json")" == 200 ]]; do
    kill -0 "$WATCH_PID" 2>/dev/null || fail_with_log "$log_file" "cargo lambda watch exited"
    grep -q "command exited" "$log_file" && fail_with_log "$log_file" "a function exited while it started"
    ((SECONDS < deadline)) || fail_with_log "$log_file" "discovery did not answer within 300 s"
    sleep 0.5
  done
  for probe in "POST login/" "POST refresh/" "POST logout/" "GET account/auth/sessions" "POST register/auth/signup"; do
    code="$(bounded_request -X "${probe% *}" "$api/lambda-url/${probe#* }")"
    [[ "$code" =~ ^(400|401|204|415)$ ]] || fail_with_log "$log_file" "warm-up $probe answered $code"
  done
  # The authorizer, invoked as API Gateway would: its fixture's placeholder token is a deny (200).
  code="$(bounded_request -d @"$ROOT/functions/authorizer/fixtures/http-api-request.json" "$api/2015-03-31/functions/authorizer/invocations")"
  [[ "$code" == 200 ]] || fail_with_log "$log_file" "warm-up of the authorizer answered $code"
}

# bounded_request CURL_ARGS...: the status code of one request to loopback, within 60 s (or
# the -m given), never through a proxy; 000 when there is no answer.
bounded_request() { curl --noproxy '*' -s -o /dev/null -m 60 -w '%{http_code}' "$@" || true; }

# fail_with_log LOG MESSAGE: fails the script with MESSAGE and the end of the functions' LOG.
fail_with_log() {
  echo "$2" >&2
  echo "--- the last lines of ${1#"$ROOT"/}:" >&2
  tail -80 "$1" >&2
  exit 1
}

# npm_ci DIR: DIR's npm packages, installed with `npm ci` from its committed lock file, again
# only when the lock file changed.
npm_ci() {
  if ! command -v npm >/dev/null; then
    echo "${1#"$ROOT"/}/ needs Node.js 20 or later with npm" >&2
    return 1
  fi
  local stamp="$1/node_modules/.installed-$(cksum <"$1/package-lock.json" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" ]]; then
    log "npm ci (${1#"$ROOT"/}/)"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$stamp"
  fi
}

# ensure_client: client/'s npm packages and its build (tsc, which also prints the bundle's
# gzipped size).
ensure_client() {
  npm_ci "$ROOT/client"
  log "building client/"
  (cd "$ROOT/client" && npm run --silent build)
}

# ensure_oidc_provider: the providers the federation tests and the demo run on loopback
# (tests/oidc/: panva's oidc-provider, as an OpenID provider and as a GitHub-shaped one).
ensure_oidc_provider() { npm_ci "$ROOT/tests/oidc"; }

# start_oidc_provider PORT CALLBACK_BASE LOG [GITHUB_PORT]: the OpenID provider on
# 127.0.0.1:PORT (client `app`, allowed back to CALLBACK_BASE/local/callback) and the
# GitHub-shaped one on 127.0.0.1:GITHUB_PORT (default: a free port; client `gh-app`, back to
# CALLBACK_BASE/github/callback); sets IDP_PID (stop it with stop_process) and IDP_GITHUB_URL,
# writes the client secrets into the emulator's Secrets Manager (where the federation
# function reads them), and exports what the functions need to offer them as providers
# `local` and `github`: OAUTH_PROVIDERS (both trusted for e-mail) and OAUTH_CALLBACK_BASE.
# Needs the emulator's environment (export_emulator_env).
start_oidc_provider() {
  local port="$1" base="$2" log_file="$3" github_port="${4:-0}" deadline=$((SECONDS + 30)) secret="local-idp-secret"
  ensure_oidc_provider
  (cd "$ROOT/tests/oidc" && PORT="$port" CLIENT_SECRET="$secret" REDIRECT_URIS="$base/local/callback" \
    GITHUB_PORT="$github_port" GITHUB_REDIRECT_URIS="$base/github/callback" exec node provider.mjs) >"$log_file" 2>&1 &
  IDP_PID=$!
  until grep -q "^listening " "$log_file"; do
    kill -0 "$IDP_PID" 2>/dev/null || fail_with_log "$log_file" "the OpenID provider exited"
    ((SECONDS < deadline)) || fail_with_log "$log_file" "the OpenID provider did not start within 30 s"
    sleep 0.2
  done
  IDP_GITHUB_URL="$(sed -n 's/^github //p' "$log_file")"
  "$VENV/bin/python" - "$secret" <<'PY'
import json, os, sys
import boto3
client = boto3.client("secretsmanager", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
value = json.dumps({"local": sys.argv[1], "github": sys.argv[1]})
try:
    client.create_secret(Name="auth/oauth-client-secrets", SecretString=value)
except client.exceptions.ResourceExistsException:
    client.put_secret_value(SecretId="auth/oauth-client-secrets", SecretString=value)
PY
  export OAUTH_PROVIDERS="[{\"id\":\"local\",\"issuer\":\"http://127.0.0.1:$port\",\"client_id\":\"app\",\"trust_email\":true},\
{\"id\":\"github\",\"kind\":\"github\",\"issuer\":\"$IDP_GITHUB_URL\",\"client_id\":\"gh-app\",\"trust_email\":true}]"
  export OAUTH_CALLBACK_BASE="$base"
}
