#!/usr/bin/env bash
# The hand-written parsers fuzzed, coverage-guided: every target in fuzz/ (libFuzzer through
# libfuzzer-sys, built on the stable toolchain with the coverage instrumentation `cargo fuzz`
# asks LLVM for, so no nightly is needed) runs FUZZ_SECONDS (default 60) each, starting
# from fuzz/seeds/ and the corpus earlier runs kept in target/fuzz/corpus/. A failed
# assertion or a panic stops the run and names the input saved in target/fuzz/artifacts/;
# `target/fuzz/<host>/release/<target> <file>` replays it.
#
#   scripts/fuzz_parsers.sh                    # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz_parsers.sh jwks
set -euo pipefail
exec </dev/null
source "$(dirname "$0")/lib.sh"
cd "$ROOT/fuzz"

seconds="${FUZZ_SECONDS:-60}"
host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$ROOT/target/fuzz"
# What `cargo fuzz build --sanitizer none` passes: edge coverage with 8-bit counters, the PC
# table and comparison tracing for libFuzzer, and `cfg(fuzzing)`. Through `--target`, so the
# build scripts and proc macros are built without them.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"

if (($#)); then targets=("$@"); else targets=($(ls fuzz_targets | sed 's/\.rs$//')); fi

log "building the fuzz targets (release, coverage-instrumented)"
cargo build --locked --release --target "$host" --bins

printf '%-22s %12s %8s %10s %8s %8s\n' target runs seconds runs/s edges corpus
for target in "${targets[@]}"; do
  corpus="$CARGO_TARGET_DIR/corpus/$target"
  artifacts="$CARGO_TARGET_DIR/artifacts/$target"
  output="$CARGO_TARGET_DIR/$target.log"
  mkdir -p "$corpus" "$artifacts"
  # Inputs up to 10 kB: past the access token's 8 KiB limit and a JWKS of several RSA keys.
  if ! "$CARGO_TARGET_DIR/$host/release/$target" -max_total_time="$seconds" -max_len=10240 \
      -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "seeds/$target" >"$output" 2>&1; then
    fail_with_log "$output" "the fuzz target $target failed; the input is in ${artifacts#"$ROOT"/}"
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: //p' "$output")"
  took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$output")"
  edges="$(grep -o 'cov: [0-9]*' "$output" | tail -n 1 | cut -d' ' -f2)"
  printf '%-22s %12s %8s %10s %8s %8s\n' "$target" "$runs" "$took" "$((runs / (took > 0 ? took : 1)))" "${edges:-?}" "$(ls "$corpus" | wc -l)"
done
