//! E-mail: what the service sends (the templates live here, versioned and tested, not in
//! SES) and the [`Mailer`] trait it sends through; [`ses`] sends with Amazon SES v2. Every
//! message has a plain-text and an HTML part, names the product and holds at most one link,
//! whose token travels in the URL's fragment: browsers never send a fragment to a server,
//! nor in a `Referer`.

pub mod ses;

use async_trait::async_trait;

use crate::error::AuthError;

/// One message to one address.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

impl std::fmt::Debug for Mail {
    // SECURITY: a message may hold a link token: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").field("subject", &self.subject).finish_non_exhaustive()
    }
}

/// Sends e-mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `mail`; an error is a 503-kind failure the caller logs (never the message).
    async fn send(&self, mail: &Mail) -> Result<(), AuthError>;
}

/// The messages, for one app: its name (the host of `APP_URL`) and where links lead.
#[derive(Debug, Clone)]
pub struct Templates {
    app_url: String,
    product: String,
}

impl Templates {
    /// Templates whose links lead into `app_url` (an origin, no trailing slash).
    pub fn new(app_url: &str) -> Self {
        let host = app_url.split("://").nth(1).unwrap_or(app_url);
        Self {
            app_url: app_url.to_owned(),
            product: host.split(['/', ':']).next().unwrap_or(host).to_owned(),
        }
    }

    /// "Confirm your address": the verification link of a new sign-up.
    pub fn verify_email(&self, to: &str, token: &str, valid_secs: u64) -> Mail {
        let link = format!("{}/verify-email#token={token}", self.app_url);
        self.mail(
            to,
            &format!("Confirm your e-mail address for {}", self.product),
            &format!("Someone, hopefully you, signed up for {} with this address.", self.product),
            "Confirm my address",
            &link,
            &format!(
                "The link works once and for {}. If you did not sign up, ignore this message: no account is created without it.",
                duration(valid_secs)
            ),
        )
    }

    /// "Reset your password": the reset link of a forgotten password.
    pub fn reset_password(&self, to: &str, token: &str, valid_secs: u64) -> Mail {
        let link = format!("{}/reset-password#token={token}", self.app_url);
        self.mail(
            to,
            &format!("Reset your {} password", self.product),
            &format!("Someone asked to reset the password of your {} account.", self.product),
            "Choose a new password",
            &link,
            &format!(
                "The link works once and for {}; a newer request replaces it. If you did not ask, ignore this message: your password stays as it is.",
                duration(valid_secs)
            ),
        )
    }

    /// "You already have an account": to the owner of an address someone signed up with
    /// again, with a reset link, so a forgotten account is recoverable and the sign-up's
    /// answer tells the caller nothing.
    pub fn already_registered(&self, to: &str, token: &str, valid_secs: u64) -> Mail {
        let link = format!("{}/reset-password#token={token}", self.app_url);
        self.mail(
            to,
            &format!("You already have a {} account", self.product),
            &format!("Someone tried to sign up for {} with this address, which already has an account. If it was you and you forgot your password, choose a new one.", self.product),
            "Choose a new password",
            &link,
            &format!("The link works once and for {}. If it was not you, ignore this message: nothing changed.", duration(valid_secs)),
        )
    }

    /// "Your password was changed": after a reset, with no link.
    pub fn password_changed(&self, to: &str) -> Mail {
        let text = format!(
            "The password of your {} account was just changed, and every session was signed out. If it was not you, reset your password at once from the sign-in page of {}.",
            self.product, self.app_url
        );
        Mail {
            to: to.to_owned(),
            subject: format!("Your {} password was changed", self.product),
            html: format!("<p>{}</p>", escape(&text)),
            text,
        }
    }

    fn mail(&self, to: &str, subject: &str, lead: &str, action: &str, link: &str, note: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: format!("{lead}\n\n{action}: {link}\n\n{note}\n"),
            html: format!(
                "<p>{}</p><p><a href=\"{}\">{}</a></p><p>{}</p>",
                escape(lead),
                escape(link),
                escape(action),
                escape(note)
            ),
        }
    }
}

/// A link's lifetime in words: whole hours, else whole minutes (at least one).
fn duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{} minutes", (s / 60).max(1)),
    }
}

/// HTML-escapes text (the address and the app URL are the only inputs from outside).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_token_in_the_fragment_and_every_part_names_the_product() {
        let templates = Templates::new("https://app.example.com");
        let mail = templates.verify_email("a@example.com", "TOKEN", 86_400);
        assert!(mail.text.contains("https://app.example.com/verify-email#token=TOKEN"), "{}", mail.text);
        assert!(mail.html.contains("href=\"https://app.example.com/verify-email#token=TOKEN\""), "{}", mail.html);
        assert!(mail.subject.contains("app.example.com") && mail.text.contains("24 hours"));
        let reset = templates.reset_password("a@example.com", "T2", 1_800);
        assert!(reset.text.contains("/reset-password#token=T2") && reset.text.contains("30 minutes"));
        assert!(
            templates
                .already_registered("a@example.com", "T3", 1_800)
                .text
                .contains("already has an account")
        );
        let changed = templates.password_changed("a@example.com");
        assert!(!changed.text.contains("#token="), "no link token after a change");
        assert_eq!(format!("{mail:?}"), "Mail { subject: \"Confirm your e-mail address for app.example.com\", .. }");
    }

    #[test]
    fn html_parts_escape_what_they_interpolate() {
        let mail = Templates::new("https://x.example\"><script>").verify_email("a@example.com", "T", 60);
        assert!(!mail.html.contains("<script>"), "{}", mail.html);
    }
}
