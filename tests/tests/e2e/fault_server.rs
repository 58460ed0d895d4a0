//! A loopback HTTP/1.1 server standing in for a failing AWS endpoint: it answers every
//! request with an error, never answers, or forwards to the emulator and either drops the
//! answers of chosen operations (a write that happened but whose response was lost) or
//! fails chosen requests before they reach it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone)]
pub enum Fault {
    /// Answer `400` with this AWS error type (e.g. `ThrottlingException`).
    Error(&'static str),
    /// Read the request and never answer.
    Hang,
    /// Forward to the emulator, but drop the answer of the first `n` calls to `operation`.
    DropAnswers { operation: &'static str, n: usize },
    /// Forward to the emulator, but answer the requests whose text (headers and body,
    /// lowercased) contains `needle` with the AWS error `error` (500 for
    /// `InternalServerError`, else 400), unforwarded: all but the first `skip`, up to `n`.
    FailMatching {
        needle: &'static str,
        error: &'static str,
        skip: usize,
        n: usize,
    },
    /// Forward to the emulator, but hold the first request whose text contains `needle`
    /// until the test opens `gate`: another client's request can then run in between (two
    /// operators' steps interleaved).
    Hold { needle: &'static str, gate: Arc<Gate> },
}

/// Where a [`Fault::Hold`] request waits: `arrived` when it is held, `open` releases it.
#[derive(Default)]
pub struct Gate {
    pub arrived: tokio::sync::Notify,
    pub open: tokio::sync::Notify,
    taken: std::sync::atomic::AtomicBool,
}

/// The server-side error: retried by the SDK, an outage for the key cache.
pub const INTERNAL_ERROR: &str = "InternalServerError";

impl Fault {
    /// [`Fault::FailMatching`] answering `InternalServerError`.
    pub fn internal_error(needle: &'static str, skip: usize, n: usize) -> Self {
        Self::FailMatching {
            needle,
            error: INTERNAL_ERROR,
            skip,
            n,
        }
    }
}

pub struct FaultServer {
    pub endpoint: String,
    requests: Arc<AtomicUsize>,
}

impl FaultServer {
    /// Requests received so far (every attempt, retries included).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

pub async fn start(fault: Fault) -> FaultServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (fault, counter, dropped) = (fault.clone(), counter.clone(), dropped.clone());
            tokio::spawn(serve(stream, fault, counter, dropped));
        }
    });
    FaultServer { endpoint, requests }
}

/// Reads one HTTP/1.1 message (headers and a Content-Length body).
async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn serve(mut stream: TcpStream, fault: Fault, counter: Arc<AtomicUsize>, dropped: Arc<AtomicUsize>) {
    while let Some(request) = read_message(&mut stream).await {
        counter.fetch_add(1, Ordering::SeqCst);
        match &fault {
            Fault::Error(kind) => {
                if stream.write_all(error_response("400 Bad Request", kind).as_bytes()).await.is_err() {
                    return;
                }
            }
            Fault::FailMatching { needle, error, skip, n } => {
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let matching = text.contains(needle).then(|| dropped.fetch_add(1, Ordering::SeqCst));
                let response = if matching.is_some_and(|i| i >= *skip && i - skip < *n) {
                    let status = if *error == INTERNAL_ERROR {
                        "500 Internal Server Error"
                    } else {
                        "400 Bad Request"
                    };
                    error_response(status, error).into_bytes()
                } else {
                    let Some(response) = forward(&request).await else { return };
                    response
                };
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
            Fault::Hold { needle, gate } => {
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                if text.contains(needle) && !gate.taken.swap(true, Ordering::SeqCst) {
                    gate.arrived.notify_one();
                    gate.open.notified().await;
                }
                let Some(response) = forward(&request).await else { return };
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
            Fault::Hang => {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                return;
            }
            Fault::DropAnswers { operation, n } => {
                let Some(response) = forward(&request).await else { return };
                let head = String::from_utf8_lossy(&request[..request.len().min(2048)]).to_ascii_lowercase();
                let is_target = head.contains(&format!("x-amz-target: dynamodb_20120810.{}", operation.to_ascii_lowercase()));
                if is_target && dropped.fetch_add(1, Ordering::SeqCst) < *n {
                    // The write happened upstream; the caller never hears of it.
                    return;
                }
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// An AWS JSON error answer.
fn error_response(status: &str, kind: &str) -> String {
    let body = format!(r#"{{"__type":"{kind}","message":"injected fault"}}"#);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fault\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends one request to the emulator and reads its answer.
async fn forward(request: &[u8]) -> Option<Vec<u8>> {
    let upstream_addr = std::env::var("AWS_ENDPOINT_URL").unwrap().trim_start_matches("http://").to_owned();
    let mut upstream = TcpStream::connect(upstream_addr).await.unwrap();
    upstream.write_all(request).await.unwrap();
    read_message(&mut upstream).await
}
