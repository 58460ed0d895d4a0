//! End-to-end tests live in `tests/e2e/`: they run the real Lambda handlers against the
//! DynamoDB / Secrets Manager emulator that `scripts/test.sh` starts on loopback.
