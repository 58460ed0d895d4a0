//! Which new passwords are accepted (NIST SP 800-63B): long enough, not absurdly long, any
//! characters (compared after NFKC normalisation, so the same text typed on another
//! keyboard is the same password), no composition rules, and not guessable, as judged by
//! zxcvbn (Dropbox's estimator, with its frequency lists) given the username and the
//! service's own names. Applied by `authctl user add` / `user passwd` and by the account
//! password change.

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use crate::config::Config;
use crate::password::MAX_PASSWORD_BYTES;

/// zxcvbn's cost grows with length; only this many leading characters are estimated, which
/// bounds the check far below one argon2id hash. A password that long and guessable in its
/// first 100 characters is still refused; one strong there is strong.
pub const MAX_ESTIMATED_CHARS: usize = 100;
/// The fewest characters accepted by any configuration (NIST's floor).
pub const MIN_LENGTH_FLOOR: usize = 8;

/// A refused password, with a message naming the rule (and zxcvbn's advice when it was
/// too guessable). Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakPassword(pub String);

/// The policy, from `PASSWORD_MIN_LENGTH` and `PASSWORD_MIN_SCORE`.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min_length: usize,
    min_score: u8,
    /// Words of this service that a password should not lean on (issuer, audience, ...).
    service_words: Vec<String>,
}

impl PasswordPolicy {
    /// At least `min_length` characters and a zxcvbn score of at least `min_score` (0–4);
    /// `service_words` are given to zxcvbn as user inputs with the username.
    pub fn new(min_length: usize, min_score: u8, service_words: Vec<String>) -> Self {
        Self {
            min_length: min_length.max(MIN_LENGTH_FLOOR),
            min_score: min_score.min(4),
            service_words,
        }
    }

    /// The configured policy (`PASSWORD_MIN_LENGTH`, `PASSWORD_MIN_SCORE`), with the issuer's
    /// host and the audience as the service's own words.
    pub fn from_config(config: &Config) -> Self {
        let host = config
            .issuer
            .split("://")
            .nth(1)
            .unwrap_or(&config.issuer)
            .split(['/', ':'])
            .next()
            .unwrap_or_default();
        Self::new(
            config.password_min_length,
            config.password_min_score,
            vec![host.to_lowercase(), config.audience.to_lowercase()],
        )
    }

    /// Checks a new password for `username` and returns it NFKC-normalised, the form that
    /// is hashed (and that login normalises to before verifying).
    pub fn check(&self, password: &SecretString, username: &str) -> Result<SecretString, WeakPassword> {
        let raw = password.expose_secret();
        // Before any other work: the byte bound is what keeps a huge input from costing CPU.
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(WeakPassword(format!("a password is at most {MAX_PASSWORD_BYTES} bytes")));
        }
        let normalized = normalize(password);
        let text = normalized.expose_secret();
        let length = text.chars().count();
        if length < self.min_length {
            return Err(WeakPassword(format!(
                "a password needs at least {} characters (this one has {length}); a few unrelated words make a good one",
                self.min_length
            )));
        }
        let username = username.trim().to_lowercase();
        if text.to_lowercase() == username {
            return Err(WeakPassword("the password must not be the username".into()));
        }
        let estimated: String = text.chars().take(MAX_ESTIMATED_CHARS).collect();
        let local_part = username.split('@').next().unwrap_or_default().to_owned();
        let mut inputs: Vec<&str> = vec![&username, &local_part];
        inputs.extend(self.service_words.iter().map(String::as_str));
        let entropy = zxcvbn::zxcvbn(&estimated, &inputs);
        let score = u8::from(entropy.score());
        if score < self.min_score {
            let advice = entropy.feedback().map_or_else(String::new, |feedback| {
                let warning = feedback.warning().map(|w| w.to_string());
                let suggestions = feedback.suggestions().iter().map(ToString::to_string);
                warning.into_iter().chain(suggestions).collect::<Vec<_>>().join(" ")
            });
            return Err(WeakPassword(
                format!(
                    "the password is too easy to guess (strength {score} of 4, at least {} needed). {advice}",
                    self.min_score
                )
                .trim_end()
                .to_owned(),
            ));
        }
        Ok(normalized)
    }
}

/// The password in NFKC form: what is hashed, and what a presented password is compared as.
pub fn normalize(password: &SecretString) -> SecretString {
    SecretString::from(password.expose_secret().nfkc().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(12, 3, vec!["auth.example.com".into()])
    }

    fn check(password: &str) -> Result<String, WeakPassword> {
        policy()
            .check(&SecretString::from(password.to_owned()), "alice@example.com")
            .map(|p| p.expose_secret().to_owned())
    }

    #[test]
    fn long_unguessable_passwords_of_any_characters_pass() {
        for good in [
            "correct horse battery staple",
            "Zebra-Quantum-Mango-1897",
            "ünïcödé wörds cross the sea ☃",
            "日本語のパスワードはとても長いです",
        ] {
            assert!(check(good).is_ok(), "{good}: {:?}", check(good));
        }
    }

    #[test]
    fn short_guessable_username_and_oversized_passwords_are_refused_naming_the_rule() {
        assert!(check("short1!").unwrap_err().0.contains("at least 12 characters"));
        let guessable = check("password1234").unwrap_err().0;
        assert!(guessable.contains("too easy to guess") && guessable.contains("strength"), "{guessable}");
        assert!(check("alice@example.com").unwrap_err().0.contains("username"));
        let for_kvothe = |p: &str| policy().check(&SecretString::from(p.to_owned()), "Kvothe.Arliden@example.com");
        assert!(for_kvothe("kvothe.arliden1").is_err(), "built from the username's local part");
        assert!(for_kvothe("Kvothe.Arliden@example.com!").is_err(), "built from the username");
        assert!(check("auth.example.com1").is_err(), "built from the service's name");
        assert!(check(&"a".repeat(MAX_PASSWORD_BYTES + 1)).unwrap_err().0.contains("at most"));
        assert!(!check("password1234").unwrap_err().0.contains("password1234"), "never quotes the password");
    }

    #[test]
    fn passwords_are_compared_in_nfkc_form() {
        // Full-width letters and a ligature normalise to their plain forms.
        let fullwidth = "ｃｏｒｒｅｃｔ horse battery staple";
        assert_eq!(check(fullwidth).unwrap(), "correct horse battery staple");
        assert_eq!(normalize(&SecretString::from("ﬁne".to_owned())).expose_secret(), "fine");
    }

    #[test]
    fn configuration_cannot_go_below_the_floor() {
        let lax = PasswordPolicy::new(1, 9, Vec::new());
        assert!(lax.check(&SecretString::from("abc".to_owned()), "x@y").is_err());
        assert_eq!(lax.min_score, 4);
    }
}
