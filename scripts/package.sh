#!/usr/bin/env bash
# The deploy build, as the README's "Deploy with SAM" tells users to run it: `sam validate
# --lint`, then `sam build --beta-features` (each function of template.yaml through
# cargo-lambda and the zig it brings: release, arm64, provided.al2023) into
# .aws-sam/build/<LogicalId>/bootstrap. Then zips each bootstrap as `sam deploy` does
# (deflate, mode 0755) into .aws-sam/zips/<LogicalId>.zip, checks it is an arm64 ELF, and
# prints each zip's size. The function list is template.yaml's AWS::Serverless::Function
# resources. Neither command contacts AWS; sam's telemetry is off. (sam's own once-a-week
# "newer version?" check asks PyPI; it fails quietly without the network.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
export PATH="$VENV/bin:$PATH" SAM_CLI_TELEMETRY=0
rustup target add aarch64-unknown-linux-gnu >/dev/null

log "sam validate --lint"
sam validate --lint

# sam builds the functions one after another, each with `cargo lambda build --release
# --arm64 --bin NAME`, so their fat-LTO links (one core each, over a minute each) run one at
# a time. The same command for every function at once lets cargo link two at a time; sam's
# own builds then find their binaries up to date and only copy them. What ships is still
# what sam built, with its flags.
functions="$("$VENV/bin/python" - <<'PY'
from samcli.yamlhelper import yaml_parse
with open("template.yaml") as f:
    resources = yaml_parse(f.read()).get("Resources", {})
for resource in resources.values():
    if resource.get("Type") == "AWS::Serverless::Function":
        print(resource["Metadata"]["BuildProperties"]["Binary"])
PY
)"
mapfile -t binaries <<<"$functions"
[[ -n "${binaries[0]:-}" ]] || { echo "template.yaml names no function binary" >&2; exit 1; }
lock_before=$(cksum Cargo.lock)
started=$SECONDS
log "cargo lambda build --release --arm64 ${binaries[*]/#/--bin }"
cargo lambda build --release --arm64 "${binaries[@]/#/--bin=}"
log "the functions built in $((SECONDS - started)) s"

# Exactly the README's build command. It builds into CARGO_TARGET_DIR when that is set,
# otherwise into the workspace's target/.
log "sam build --beta-features"
sam build --beta-features
log "sam build done, $((SECONDS - started)) s after the build began"
# sam has no --locked: a build that had to change Cargo.lock fails here instead.
[[ "$(cksum Cargo.lock)" == "$lock_before" ]] || { echo "sam build changed Cargo.lock" >&2; exit 1; }

# Target: each zip under 5 MB (fast cold starts; Lambda's own limit is 50 MB).
"$VENV/bin/python" - <<'PY'
import os, struct, sys, zipfile
from samcli.yamlhelper import yaml_parse

with open("template.yaml") as f:
    resources = yaml_parse(f.read()).get("Resources", {})
functions = [k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"]
if not functions:
    sys.exit("no AWS::Serverless::Function in template.yaml")

target_bytes = 5 * 1000 * 1000
os.makedirs(".aws-sam/zips", exist_ok=True)
rows, failed = [], False
for name in functions:
    binary = f".aws-sam/build/{name}/bootstrap"
    if not os.path.isfile(binary):
        print(f"{name}: sam build produced no {binary}", file=sys.stderr)
        failed = True
        continue
    with open(binary, "rb") as f:
        data = f.read()
    # ELF, 64-bit, little-endian, e_machine 183 (EM_AARCH64).
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1 or struct.unpack_from("<H", data, 18)[0] != 183:
        print(f"{name}: {binary} is not an aarch64 ELF executable", file=sys.stderr)
        failed = True
        continue
    zip_path = f".aws-sam/zips/{name}.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.create_system = 3  # Unix, so Lambda keeps the mode bits
        info.external_attr = 0o100755 << 16
        zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    zip_size = os.path.getsize(zip_path)
    verdict = "ok" if zip_size < target_bytes else "OVER TARGET"
    rows.append((name, zip_size, len(data), verdict))

print(f"\n{'function':<20} {'zip bytes':>12} {'binary bytes':>12}  (target: zip < 5 MB)")
for name, zip_size, binary_size, verdict in rows:
    print(f"{name:<20} {zip_size:>12} {binary_size:>12}  {verdict}")
sys.exit(1 if failed else 0)
PY
