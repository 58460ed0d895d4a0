//! The floor of the authorizer's cold start, for `scripts/bench.sh` only (never deployed:
//! SAM builds `--bin authorizer`, and `cargo lambda watch` serves binaries, not examples):
//! the same Lambda runtime, tokio set-up and release profile as `authorizer`, answering
//! each event with the event itself. Its time to the first `GET /runtime/invocation/next`
//! is what any Rust Lambda pays; the authorizer's difference to it is our own init.

use lambda_http::{Error, LambdaEvent, lambda_runtime, service_fn};
use serde_json::value::RawValue;

// One thread: an instance serves one request at a time, and worker threads cost CPU at
// every cold start (docs/performance.md). argon2id still runs on tokio's blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Box<RawValue>>| async move { Ok::<_, Error>(event.payload) })).await
}
