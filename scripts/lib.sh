# Shared by scripts/dev.sh, scripts/test.sh, scripts/e2e.sh and scripts/browser.sh: the
# project-local Python venv (moto, cargo-lambda, cfn-lint, aws-sam-cli, and PyJWT, the
# third-party verifier the end-to-end tests check our tokens and discovery documents with),
# the DynamoDB/Secrets Manager emulator on loopback, and the browser client's build.
# Source it; it defines functions and sets no options of the caller.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# Pinned so every machine and CI run the same tools. aws-sam-cli is what scripts/package.sh
# (and the README's deploy) builds with; it pins boto3 exactly, so moto runs on that boto3.
PY_PACKAGES=("moto[server]==5.2.5" "cargo-lambda==1.9.2" "cfn-lint==1.58.0" "aws-sam-cli==1.170.0" "pyjwt[crypto]==2.15.1")

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Creates .venv and installs the tools once; later runs only check the stamp.
ensure_venv() {
  local stamp="$VENV/.installed-$(printf '%s ' "${PY_PACKAGES[@]}" | cksum | cut -d' ' -f1)"
  if [[ -f "$stamp" ]]; then return 0; fi
  log "installing ${PY_PACKAGES[*]} into .venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
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

# ensure_client: client/'s npm packages (npm ci from the committed lock file; again only when
# the lock file changed) and its build (tsc, which also prints the bundle's gzipped size).
ensure_client() {
  if ! command -v npm >/dev/null; then
    echo "client/ needs Node.js 20 or later with npm" >&2
    return 1
  fi
  local stamp="$ROOT/client/node_modules/.installed-$(cksum <"$ROOT/client/package-lock.json" | cut -d' ' -f1)"
  if [[ ! -f "$stamp" ]]; then
    log "npm ci (client/)"
    (cd "$ROOT/client" && npm ci --no-audit --no-fund --loglevel=error)
    touch "$stamp"
  fi
  log "building client/"
  (cd "$ROOT/client" && npm run --silent build)
}
