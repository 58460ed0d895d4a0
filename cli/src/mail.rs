//! `authctl mail`: the local mailbox. The emulator (moto) keeps every message the functions
//! send through SES instead of delivering it; this reads them back, so sign-up and reset
//! links can be followed on a laptop with no AWS account. On AWS, mail goes to real inboxes.

use clap::Subcommand;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to read.
#[derive(Subcommand)]
pub enum MailCommand {
    /// One line per message kept by the emulator, newest last: number, recipient, subject.
    List,
    /// One message in full (the newest, or number N from `mail list`), links included.
    Show {
        /// The message's number in `mail list`.
        number: Option<usize>,
    },
}

/// Runs one `authctl mail` command against the emulator at `AWS_ENDPOINT_URL`.
pub async fn run(command: MailCommand) -> Result<(), String> {
    let messages = read_mailbox().await?;
    match command {
        MailCommand::List => {
            if messages.is_empty() {
                println!("no messages (the functions send on sign-up, resend, forgot and reset)");
            }
            for (i, m) in messages.iter().enumerate() {
                println!("{:>3}  {:<40} {}", i + 1, recipients(m), m["subject"].as_str().unwrap_or_default());
            }
        }
        MailCommand::Show { number } => {
            let index = number.unwrap_or(messages.len());
            let m = index
                .checked_sub(1)
                .and_then(|i| messages.get(i))
                .ok_or_else(|| format!("no message {index}; `authctl mail list` shows them"))?;
            println!("To:      {}", recipients(m));
            println!("From:    {}", m["source"].as_str().unwrap_or_default());
            println!("Subject: {}\n", m["subject"].as_str().unwrap_or_default());
            let body = m["body"].as_str().unwrap_or_default();
            println!("{}", text_of(body));
        }
    }
    Ok(())
}

fn recipients(message: &Value) -> String {
    let to = message["destinations"]["ToAddresses"].as_array().cloned().unwrap_or_default();
    to.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
}

/// The HTML part as text, with each link's address written out after it.
fn text_of(html: &str) -> String {
    let with_links = html.replace("<a href=\"", "[").replace("\">", "] ");
    let mut text = String::new();
    let mut in_tag = false;
    for c in with_links.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push('\n');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")
}

/// The emulator's kept SES messages, oldest first.
async fn read_mailbox() -> Result<Vec<Value>, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let Some(address) = endpoint.strip_prefix("http://") else {
        return Err("authctl mail reads the local emulator's mailbox: set AWS_ENDPOINT_URL=http://127.0.0.1:<port> (scripts/dev.sh does); on AWS, mail reaches real inboxes".into());
    };
    let address = address.trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("the emulator at {address}: {e}"))?;
    let request = format!("GET /moto-api/data.json HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body).ok_or("the emulator's answer has no body")?;
    let data: Value = serde_json::from_str(body).map_err(|e| format!("the emulator's answer is not JSON: {e}"))?;
    Ok(data["ses"]["Message"].as_array().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_read_as_text_with_their_links_written_out() {
        let text = text_of("<p>Hi &amp; welcome</p><p><a href=\"https://x.example/verify-email#token=T\">Confirm</a></p>");
        assert!(text.contains("Hi & welcome"), "{text}");
        assert!(text.contains("[https://x.example/verify-email#token=T] Confirm"), "{text}");
    }
}
