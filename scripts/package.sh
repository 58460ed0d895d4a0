#!/usr/bin/env bash
# Builds release zips of the four functions for Lambda arm64 (provided.al2023) with
# cargo-lambda and the zig it brings, into target/lambda/<name>/bootstrap.zip, and prints
# each zip's size. `sam build` does the same per function from template.yaml.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
export PATH="$VENV/bin:$PATH"
rustup target add aarch64-unknown-linux-gnu >/dev/null

functions=(login refresh logout authorizer)
log "cargo lambda build --release --arm64 (${functions[*]})"
cargo lambda build --release --arm64 --output-format zip --locked $(printf -- '--bin %s ' "${functions[@]}")

# Target: each zip under 5 MB (fast cold starts; Lambda's own limit is 50 MB).
target_bytes=$((5 * 1000 * 1000))
printf '\n%-12s %12s %12s  %s\n' function "zip bytes" "binary bytes" "(target: zip < 5 MB)"
for name in "${functions[@]}"; do
  zip="target/lambda/$name/bootstrap.zip"
  [[ -f "$zip" ]] || { echo "missing $zip" >&2; exit 1; }
  binary_size=$(python3 -c "import zipfile,sys; print(zipfile.ZipFile(sys.argv[1]).getinfo('bootstrap').file_size)" "$zip")
  zip_size=$(stat -c %s "$zip")
  verdict=ok; (( zip_size < target_bytes )) || verdict="OVER TARGET"
  printf '%-12s %12d %12d  %s\n' "$name" "$zip_size" "$binary_size" "$verdict"
done
