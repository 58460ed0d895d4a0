//! Amazon SES v2 `SendEmail`, from one verified sender. SDK types stay here.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use super::{Mail, Mailer};
use crate::error::{AuthError, sdk_error};

/// Sends through SES v2 from `from`.
#[derive(Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
}

impl SesMailer {
    /// A mailer over `client` sending from `from` (an identity verified in SES).
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self { client, from: from.into() }
    }
}

fn content(data: &str) -> Result<Content, AuthError> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| AuthError::unavailable("SendEmail request", e))
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), AuthError> {
        let message = Message::builder()
            .subject(content(&mail.subject)?)
            .body(Body::builder().text(content(&mail.text)?).html(content(&mail.html)?).build())
            .build();
        self.client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| sdk_error("SendEmail", e))?;
        Ok(())
    }
}
