//! The one-time tokens e-mailed links carry (address verification, password reset): 256
//! random bits, stored only as their SHA-256 with a purpose, so one kind is never accepted
//! as another, used once by a conditional write, and superseded by the next one issued.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::random::random_bytes;
use crate::tokens::TokenHash;

/// What a link is for: part of the stored item, and of the condition that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkPurpose {
    /// Proves the sign-up's address is its owner's.
    VerifyEmail,
    /// Lets the address's owner set a new password.
    ResetPassword,
}

impl LinkPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A link token as sent: its secret, shown once (in the e-mail) and never stored or logged.
pub struct LinkToken([u8; 32]);

impl LinkToken {
    /// A fresh token from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    /// Reads a token as the link carried it: exactly 43 base64url characters; anything else
    /// is `None` (and answered like an unknown token).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The form that goes into the link.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// What is stored: SHA-256 of the secret.
    pub fn hash(&self) -> TokenHash {
        let d = digest::digest(&digest::SHA256, &self.0);
        TokenHash::from_slice(d.as_ref()).unwrap_or(TokenHash([0; 32]))
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(<redacted>)")
    }
}

/// A link about to be stored: its hash, purpose and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedLink {
    /// SHA-256 of the token.
    pub hash: TokenHash,
    /// What it is for.
    pub purpose: LinkPurpose,
    /// Epoch seconds after which it is refused (and the item's TTL).
    pub expires_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_anything_else_is_refused() {
        let token = LinkToken::generate();
        let text = token.encode();
        assert_eq!(text.len(), 43);
        assert_eq!(LinkToken::parse(&text).unwrap().hash(), token.hash());
        for bad in ["", "short", &format!("{text}A"), &text.replace(|c: char| c.is_ascii_alphanumeric(), "!")] {
            assert!(LinkToken::parse(bad).is_none(), "{bad:?}");
        }
        assert_ne!(LinkToken::generate().hash(), token.hash());
        assert_eq!(format!("{token:?}"), "LinkToken(<redacted>)");
    }
}
