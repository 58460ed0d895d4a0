//! Where a cold start's milliseconds go, for `docs/performance.md` only (never deployed:
//! SAM builds `--bin login`): login's init, one step at a time, with the wall-clock time
//! and the CPU time of every thread of the process after each step. Run it with the
//! emulator's environment (`AWS_ENDPOINT_URL`, a region, credentials) and the tables made
//! by `authctl local-setup`; it prints one JSON line. `scripts/bench/init_steps.py` starts
//! it 20 times and prints the medians.
//!
//! The steps are the ones `main` takes, split where `aws::auth_service` hides them:
//! the SDK configuration, the clients, then the key fetch and the DynamoDB warm-up (each
//! the first request over a new connection). With the argument `default-chains` the SDK
//! configuration comes from `aws-config`'s loader instead of the Lambda environment.

use std::time::Instant;

use auth_core::{Config, aws, telemetry};
use serde_json::{Value, json};

/// On-CPU nanoseconds of every thread of this process so far (`/proc/self/task/*/schedstat`,
/// first field), the figure `lambda_init` reads for a whole start.
fn cpu_ns() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

struct Steps {
    wall: Instant,
    last: (f64, f64),
    out: Vec<Value>,
}

impl Steps {
    /// Records the wall-clock and CPU milliseconds since the previous mark.
    fn mark(&mut self, name: &str) {
        let now = (self.wall.elapsed().as_secs_f64() * 1e3, cpu_ns() as f64 / 1e6);
        self.out
            .push(json!({"step": name, "wall_ms": now.0 - self.last.0, "cpu_ms": now.1 - self.last.1}));
        self.last = now;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut steps = Steps {
        wall: Instant::now(),
        last: (0.0, cpu_ns() as f64 / 1e6),
        out: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    steps.mark("tokio runtime");
    runtime.block_on(async {
        telemetry::init();
        steps.mark("telemetry");
        let config = Config::from_env()?;
        steps.mark("configuration");
        // `default-chains`: aws-config's loader, as authctl configures itself (and as the
        // functions did before they read the Lambda environment).
        let sdk = if std::env::args().any(|a| a == "default-chains") {
            aws::load_sdk_config().await
        } else {
            aws::lambda_sdk_config()?
        };
        steps.mark("SDK configuration");
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        steps.mark("DynamoDB client");
        let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
        steps.mark("Secrets Manager client");
        let service = aws::auth_service_with(&config, dynamodb, secrets);
        steps.mark("the service");
        service.warm_up().await;
        steps.mark("key fetch and DynamoDB warm-up (first requests, in parallel)");
        service.warm_up().await;
        steps.mark("the same again, connections open (for comparison)");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    println!("{}", Value::Array(steps.out));
    Ok(())
}
