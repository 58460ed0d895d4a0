//! Getting in and back in without an operator: sign-up with a verified address, the
//! verification link (and its resend), and the password reset by e-mail. Every answer that
//! could tell whether an address has an account is the same whatever the answer is: the
//! owner of the address learns it by e-mail, the caller never does.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::audit::{self, AuditEvent, RequestMeta};
use crate::clock::Clock;
use crate::config::{Config, Signup};
use crate::error::AuthError;
use crate::links::{IssuedLink, LinkPurpose, LinkToken};
use crate::mail::{Mail, Mailer, Templates};
use crate::password::hash_new_password;
use crate::password_policy::PasswordPolicy;
use crate::service::credentials::{PasswordCheck, check_password};
use crate::store::{LinkStore, UserRecord, UserStore};

/// How long a sign-up that is never verified keeps its address: then its item expires
/// (the users table's TTL) and the address is free again.
pub const UNVERIFIED_ACCOUNT_SECS: u64 = 7 * 24 * 3600;
/// The roles of a self-service account.
pub const SIGNUP_ROLES: [&str; 1] = ["user"];
/// The longest a request waits for SES: a slow mail service must not hold the answer (or
/// the function's timeout); the user can ask again.
pub const MAIL_DEADLINE: Duration = Duration::from_secs(1);
/// Sign-up, resend and forgot answer no sooner than this after they began, whatever they
/// did: a mail sent (tens of milliseconds to SES, at most [`MAIL_DEADLINE`]) or nothing
/// (an unknown address, a limit reached) must not be told apart by time.
pub const ANSWER_FLOOR: Duration = Duration::from_millis(1500);
/// Longest e-mail address accepted (RFC 5321's path limit).
pub const MAX_ADDRESS_BYTES: usize = 254;

/// Which link e-mail to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkMail {
    /// A verification link to a new (or still unverified) account.
    Verify,
    /// A reset link the owner asked for.
    Reset,
    /// A reset link to the owner of an address someone tried to sign up with.
    AlreadyRegistered,
}

impl LinkMail {
    fn purpose(self) -> LinkPurpose {
        match self {
            Self::Verify => LinkPurpose::VerifyEmail,
            Self::Reset | Self::AlreadyRegistered => LinkPurpose::ResetPassword,
        }
    }
}

/// The self-service flows over the users table, the link store and a mailer.
pub struct Registration {
    users: Arc<dyn UserStore>,
    links: Arc<dyn LinkStore>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    passwords: PasswordPolicy,
    templates: Templates,
    signup: Signup,
    verify_ttl: u64,
    reset_ttl: u64,
    address_limit: u64,
    ip_limit: u64,
    answer_floor: Duration,
}

impl Registration {
    /// The flows for `config`, whose links lead into `app_url`.
    pub fn new(config: &Config, app_url: &str, users: Arc<dyn UserStore>, links: Arc<dyn LinkStore>, mailer: Arc<dyn Mailer>, clock: Arc<dyn Clock>) -> Self {
        Self {
            users,
            links,
            mailer,
            clock,
            passwords: PasswordPolicy::from_config(config),
            templates: Templates::new(app_url),
            signup: config.signup,
            verify_ttl: config.email_verify_ttl,
            reset_ttl: config.password_reset_ttl,
            address_limit: config.email_limit_per_hour,
            ip_limit: config.email_ip_limit_per_hour,
            answer_floor: ANSWER_FLOOR,
        }
    }

    /// The same with another floor under the 202 answers (tests).
    pub fn with_answer_floor(mut self, floor: Duration) -> Self {
        self.answer_floor = floor;
        self
    }

    /// Runs `work`, then waits until [`ANSWER_FLOOR`] after it began: the answers whose
    /// time could tell an address with an account from one without all take the same.
    async fn on_time(&self, work: impl Future<Output = Result<(), AuthError>>) -> Result<(), AuthError> {
        let began = tokio::time::Instant::now();
        let result = work.await;
        tokio::time::sleep_until(began + self.answer_floor).await;
        result
    }

    /// `POST /auth/signup`: the same `Ok` whether the address is new or taken. A new address
    /// gets an unverified account and a verification link; a verified one's owner gets a
    /// "you already have an account" message with a reset link; an unverified one takes
    /// this sign-up's password as its pending one and gets a fresh link. Every path ends at
    /// [`ANSWER_FLOOR`], so the time taken tells no more than the answer.
    pub async fn sign_up(&self, username: &str, password: &SecretString, meta: &RequestMeta) -> Result<(), AuthError> {
        if self.signup == Signup::Closed {
            return Err(AuthError::SignupClosed);
        }
        let address = email_address(username)?;
        let password = self.passwords.check(password, &address).map_err(|weak| AuthError::WeakPassword(weak.0))?;
        self.on_time(self.sign_up_checked(address, password, meta)).await
    }

    async fn sign_up_checked(&self, address: String, password: SecretString, meta: &RequestMeta) -> Result<(), AuthError> {
        // The source first: a flood from one address costs no argon2id.
        if !self.source_allowed(meta).await? {
            return Ok(());
        }
        let password_hash = hash_new_password(password).await?;
        let now = self.clock.now();
        let user = UserRecord {
            email_verified: false,
            expires_at: Some(now + UNVERIFIED_ACCOUNT_SECS),
            ..UserRecord::new(
                address.clone(),
                uuid::Uuid::new_v4().to_string(),
                password_hash,
                SIGNUP_ROLES.iter().map(|r| (*r).to_owned()).collect(),
            )
        };
        if self.links.create_unverified(&user, now).await? {
            audit::emit(AuditEvent::SignedUp, meta, Some(&user.user_id), None, None);
            return self.send_link(&user, LinkMail::Verify, meta).await;
        }
        // Taken: its owner hears of it, the caller does not.
        match self.users.get(&address).await?.filter(|u| u.is_present(now) && !u.disabled) {
            Some(owner) if owner.email_verified => self.send_link(&owner, LinkMail::AlreadyRegistered, meta).await,
            // SECURITY: still unverified, so nobody has proven the address yet: the latest
            // sign-up's password is the pending one, and verifying needs it. Whoever signed
            // up first with someone else's address keeps no password on their account.
            Some(pending) => {
                if self.links.replace_unverified_password(&address, &user.password_hash, now).await? {
                    self.send_link(&pending, LinkMail::Verify, meta).await?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// `POST /auth/verify-email`: uses the link (once, the newest only, before it expires)
    /// with the account's password, checked as login checks it (throttled, argon2id): the
    /// inbox proves the address, the password that the account will have was chosen by
    /// whoever holds it, so nobody who signed up first with someone else's address keeps a
    /// way in. The address is verified; the user then logs in (this is no login: another
    /// device may open the page). A bad link is `InvalidLink`, a wrong password
    /// `InvalidCredentials` (the link survives it).
    pub async fn verify_email(&self, token: &str, password: &SecretString, meta: &RequestMeta) -> Result<(), AuthError> {
        let token = LinkToken::parse(token).ok_or(AuthError::InvalidLink)?;
        let hash = token.hash();
        let now = self.clock.now();
        let owner = self
            .links
            .link_owner(&hash, LinkPurpose::VerifyEmail, now)
            .await?
            .ok_or(AuthError::InvalidLink)?;
        let user = match check_password(&*self.users, &owner, password, now).await? {
            PasswordCheck::Passed(user) => user,
            PasswordCheck::Throttled { retry_after_secs, .. } => return Err(AuthError::TooManyAttempts { retry_after_secs }),
            PasswordCheck::Failed { .. } => return Err(AuthError::InvalidCredentials),
        };
        if !self.links.verify_email(&hash, &owner, &user.password_hash, now).await? {
            return Err(AuthError::InvalidLink);
        }
        if let Err(e) = self.users.clear_attempts(&owner).await {
            tracing::warn!(cause = %e, "clearing the attempt counter after a verification failed");
        }
        audit::emit(AuditEvent::EmailVerified, meta, Some(&user.user_id), None, None);
        Ok(())
    }

    /// `POST /auth/verify-email/resend`: a fresh link to an unverified account's address
    /// (the older one dies); the same `Ok` for every address.
    pub async fn resend_verification(&self, username: &str, meta: &RequestMeta) -> Result<(), AuthError> {
        let address = email_address(username)?;
        self.on_time(self.resend_checked(address, meta)).await
    }

    async fn resend_checked(&self, address: String, meta: &RequestMeta) -> Result<(), AuthError> {
        if !self.source_allowed(meta).await? {
            return Ok(());
        }
        let now = self.clock.now();
        match self
            .users
            .get(&address)
            .await?
            .filter(|u| u.is_present(now) && !u.email_verified && !u.disabled)
        {
            Some(pending) => self.send_link(&pending, LinkMail::Verify, meta).await,
            None => Ok(()),
        }
    }

    /// `POST /auth/password/forgot`: a reset link to a live, verified account's address;
    /// the same `Ok` for unknown, unverified and disabled ones.
    pub async fn forgot_password(&self, username: &str, meta: &RequestMeta) -> Result<(), AuthError> {
        let address = email_address(username)?;
        self.on_time(self.forgot_checked(address, meta)).await
    }

    async fn forgot_checked(&self, address: String, meta: &RequestMeta) -> Result<(), AuthError> {
        if !self.source_allowed(meta).await? {
            return Ok(());
        }
        let now = self.clock.now();
        match self.users.get(&address).await?.filter(|u| u.is_present(now) && u.email_verified && !u.disabled) {
            Some(owner) => self.send_link(&owner, LinkMail::Reset, meta).await,
            None => Ok(()),
        }
    }

    /// `POST /auth/password/reset`: uses the link and sets the new password in one
    /// transaction that also bumps the session epoch (every session ends) and kills every
    /// other reset link; then clears the login throttle and tells the owner by e-mail. Not
    /// a login: the user signs in with the new password, and MFA, when it comes, still asks.
    pub async fn reset_password(&self, token: &str, new_password: &SecretString, meta: &RequestMeta) -> Result<(), AuthError> {
        let token = LinkToken::parse(token).ok_or(AuthError::InvalidLink)?;
        let hash = token.hash();
        let owner = self
            .links
            .link_owner(&hash, LinkPurpose::ResetPassword, self.clock.now())
            .await?
            .ok_or(AuthError::InvalidLink)?;
        let password = self.passwords.check(new_password, &owner).map_err(|weak| AuthError::WeakPassword(weak.0))?;
        let password_hash = hash_new_password(password).await?;
        if !self.links.reset_password(&hash, &owner, &password_hash, self.clock.now()).await? {
            return Err(AuthError::InvalidLink);
        }
        let username = owner;
        if let Err(e) = self.users.clear_attempts(&username).await {
            tracing::warn!(cause = %e, "clearing the attempt counter after a reset failed");
        }
        let user_id = self.users.get(&username).await?.map(|u| u.user_id);
        audit::emit(AuditEvent::PasswordReset, meta, user_id.as_deref(), None, None);
        self.deliver(&self.templates.password_changed(&username), user_id.as_deref(), meta).await;
        Ok(())
    }

    /// Whether the request's source address may ask for another e-mail this hour.
    async fn source_allowed(&self, meta: &RequestMeta) -> Result<bool, AuthError> {
        let Some(ip) = meta.source_ip.as_deref() else { return Ok(true) };
        let allowed = self
            .links
            .count_mail(&format!("ip#{}", source_key(ip)), self.ip_limit, self.clock.now())
            .await?;
        if !allowed {
            audit::emit(AuditEvent::EmailNotSent, meta, None, None, Some("source_limited"));
        }
        Ok(allowed)
    }

    /// Issues a link for `message` to `user` (superseding older ones) and mails it, within
    /// the address's hourly limit. The link is stored before the mail goes out, so a lost
    /// mail leaves nothing half-written: the user asks again.
    async fn send_link(&self, user: &UserRecord, message: LinkMail, meta: &RequestMeta) -> Result<(), AuthError> {
        let purpose = message.purpose();
        let now = self.clock.now();
        if !self.links.count_mail(&user.username, self.address_limit, now).await? {
            audit::emit(AuditEvent::EmailNotSent, meta, Some(&user.user_id), None, Some("limited"));
            return Ok(());
        }
        let token = LinkToken::generate();
        let ttl = match purpose {
            LinkPurpose::VerifyEmail => self.verify_ttl,
            LinkPurpose::ResetPassword => self.reset_ttl,
        };
        let link = IssuedLink {
            hash: token.hash(),
            purpose,
            expires_at: now + ttl,
        };
        if !self.links.issue_link(&user.username, &link).await? {
            return Ok(());
        }
        let encoded = token.encode();
        let mail = match message {
            LinkMail::Verify => self.templates.verify_email(&user.username, &encoded, ttl),
            LinkMail::Reset => self.templates.reset_password(&user.username, &encoded, ttl),
            LinkMail::AlreadyRegistered => self.templates.already_registered(&user.username, &encoded, ttl),
        };
        self.deliver(&mail, Some(&user.user_id), meta).await;
        Ok(())
    }

    /// Sends `mail` within [`MAIL_DEADLINE`]; a failure is logged (never the message) and
    /// not answered: the answer must not say whether anything was sent.
    async fn deliver(&self, mail: &Mail, user_id: Option<&str>, meta: &RequestMeta) {
        let sent = tokio::time::timeout(MAIL_DEADLINE, self.mailer.send(mail)).await;
        let failure = match sent {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within the deadline".to_owned(),
        };
        tracing::warn!(cause = %failure, "sending an e-mail failed; the user can ask again");
        audit::emit(AuditEvent::EmailNotSent, meta, user_id, None, Some("send_failed"));
    }
}

/// What one source counts as: an IPv4 address, or an IPv6 address's /64 (one host is
/// usually given a whole /64, and could rotate through it).
fn source_key(ip: &str) -> String {
    match ip.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Err(_) => ip.to_owned(),
    }
}

/// The account key of an e-mail address: trimmed and lowercased, the local part too (two
/// addresses that differ only in case are one account, as with virtually every provider),
/// and checked to be a plain `local@domain.tld` address of printable ASCII. `InvalidRequest`
/// otherwise.
pub fn email_address(raw: &str) -> Result<String, AuthError> {
    const INVALID: AuthError = AuthError::InvalidRequest("username must be an e-mail address.");
    let address = raw.trim().to_ascii_lowercase();
    if address.is_empty() || address.len() > MAX_ADDRESS_BYTES || !address.is_ascii() {
        return Err(INVALID);
    }
    let (local, domain) = address.rsplit_once('@').ok_or(INVALID)?;
    // `#` would collide with the table's counter items; quotes, spaces and the other
    // specials are left out rather than parsed.
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if local_ok && domain_ok { Ok(address) } else { Err(INVALID) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::IssuedTokens;
    use crate::store::{AttemptReservation, SessionStore};
    use crate::testing::{ALICE, MemoryMailer, TestBed, config_with};

    const NEW: &str = "new.user@example.com";
    const PASSWORD: &str = "quartz lantern orbit meadow";

    struct Bed {
        bed: TestBed,
        mailer: Arc<MemoryMailer>,
        registration: Registration,
    }

    fn bed_with(extra: &[(&str, &str)]) -> Bed {
        let mut vars = vec![
            ("SIGNUP", "open"),
            ("APP_URL", "https://app.example.com"),
            ("EMAIL_FROM", "no-reply@example.com"),
        ];
        vars.extend_from_slice(extra);
        let bed = TestBed::new(config_with(&vars));
        let mailer = Arc::new(MemoryMailer::default());
        let registration = Registration::new(
            &bed.config,
            "https://app.example.com",
            bed.users.clone(),
            bed.users.clone(),
            mailer.clone(),
            bed.clock.clone(),
        )
        .with_answer_floor(Duration::ZERO);
        Bed { bed, mailer, registration }
    }

    fn bed() -> Bed {
        bed_with(&[])
    }

    fn meta(ip: &str) -> RequestMeta {
        RequestMeta {
            source_ip: Some(ip.to_owned()),
            ..RequestMeta::default()
        }
    }

    async fn login(bed: &Bed, username: &str, password: &str) -> Result<IssuedTokens, AuthError> {
        let outcome = bed.bed.service.login(username, password.to_owned().into(), &RequestMeta::default()).await?;
        Ok(outcome.signed().expect("no second factor in these tests"))
    }

    async fn sign_up(bed: &Bed, username: &str) -> Result<(), AuthError> {
        bed.registration.sign_up(username, &PASSWORD.to_owned().into(), &meta("192.0.2.1")).await
    }

    #[tokio::test]
    async fn a_sign_up_cannot_log_in_until_its_address_is_verified_and_then_can() {
        let bed = bed();
        sign_up(&bed, " New.User@Example.COM ").await.unwrap();
        let user = UserStore::get(&*bed.bed.users, NEW)
            .await
            .unwrap()
            .expect("created under the normalised address");
        assert!(!user.email_verified && user.expires_at.is_some());
        // Only the right password learns that the address is unverified.
        assert!(matches!(login(&bed, NEW, "not the password at all").await, Err(AuthError::InvalidCredentials)));
        assert!(matches!(login(&bed, NEW, PASSWORD).await, Err(AuthError::EmailNotVerified)));
        let token = bed.mailer.last_token(NEW).expect("a verification link was sent");
        bed.registration
            .verify_email(&token, &PASSWORD.to_owned().into(), &meta("192.0.2.1"))
            .await
            .unwrap();
        let user = UserStore::get(&*bed.bed.users, NEW).await.unwrap().unwrap();
        assert!(user.email_verified && user.expires_at.is_none(), "verified and kept");
        assert!(login(&bed, NEW, PASSWORD).await.is_ok());
        assert!(
            matches!(
                bed.registration.verify_email(&token, &PASSWORD.to_owned().into(), &meta("192.0.2.1")).await,
                Err(AuthError::InvalidLink)
            ),
            "used once"
        );
    }

    #[tokio::test]
    async fn signing_up_with_a_taken_address_answers_alike_and_mails_its_owner_a_reset_link_instead() {
        let bed = bed();
        let before = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        sign_up(&bed, ALICE.0).await.unwrap();
        assert_eq!(
            UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap(),
            before,
            "the account is untouched"
        );
        let sent = bed.mailer.sent();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].text.contains("already has an account") && sent[0].text.contains("/reset-password#token="));
        // The link is a real reset link for the owner.
        let token = bed.mailer.last_token(ALICE.0).unwrap();
        bed.registration
            .reset_password(&token, &"a brand new passphrase here".to_owned().into(), &meta("192.0.2.9"))
            .await
            .unwrap();
        assert!(login(&bed, ALICE.0, "a brand new passphrase here").await.is_ok());
    }

    #[tokio::test]
    async fn whoever_signs_up_first_with_someone_elses_address_keeps_no_way_into_it() {
        let bed = bed();
        let attacker: SecretString = "the attacker's own passphrase".to_owned().into();
        bed.registration.sign_up(NEW, &attacker, &meta("198.51.100.7")).await.unwrap();
        let attackers_link = bed.mailer.last_token(NEW).unwrap();
        // The owner of the address signs up too, with their password.
        sign_up(&bed, NEW).await.unwrap();
        let owners_link = bed.mailer.last_token(NEW).unwrap();
        // The attacker's password no longer verifies anything, even with a link.
        let taken_over = bed.registration.verify_email(&owners_link, &attacker, &meta("198.51.100.7")).await;
        assert!(matches!(taken_over, Err(AuthError::InvalidCredentials)), "{taken_over:?}");
        assert!(matches!(
            bed.registration
                .verify_email(&attackers_link, &PASSWORD.to_owned().into(), &meta("192.0.2.1"))
                .await,
            Err(AuthError::InvalidLink)
        ));
        bed.registration
            .verify_email(&owners_link, &PASSWORD.to_owned().into(), &meta("192.0.2.1"))
            .await
            .unwrap();
        assert!(matches!(
            login(&bed, NEW, "the attacker's own passphrase").await,
            Err(AuthError::InvalidCredentials)
        ));
        assert!(login(&bed, NEW, PASSWORD).await.is_ok());
    }

    #[tokio::test]
    async fn verifying_needs_the_accounts_password_and_a_wrong_one_leaves_the_link_usable() {
        let bed = bed();
        sign_up(&bed, NEW).await.unwrap();
        let token = bed.mailer.last_token(NEW).unwrap();
        let wrong = bed
            .registration
            .verify_email(&token, &"not the password at all".to_owned().into(), &meta("192.0.2.1"))
            .await;
        assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
        assert!(bed.bed.users.throttle(NEW).attempts > 0, "counted as a login attempt");
        bed.registration
            .verify_email(&token, &PASSWORD.to_owned().into(), &meta("192.0.2.1"))
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn sign_up_resend_and_forgot_take_the_same_time_whatever_the_address() {
        let mut bed = bed();
        bed.registration = bed.registration.with_answer_floor(ANSWER_FLOOR);
        sign_up(&bed, NEW).await.unwrap();
        let r = &bed.registration;
        let m = meta("192.0.2.1");
        let password: SecretString = PASSWORD.to_owned().into();
        let times = [
            timed(r.forgot_password(ALICE.0, &m)).await,
            timed(r.forgot_password("nobody@example.com", &m)).await,
            timed(r.resend_verification(NEW, &m)).await,
            timed(r.resend_verification(ALICE.0, &m)).await,
            timed(r.sign_up(ALICE.0, &password, &m)).await,
            timed(r.sign_up("another.new@example.com", &password, &m)).await,
        ];
        assert!(bed.mailer.sent().len() >= 4, "some of these sent mail, some did not");
        assert!(times.iter().all(|t| *t == ANSWER_FLOOR), "{times:?} (tokio's paused clock)");
    }

    /// How long `work` took (on tokio's clock), which must succeed.
    async fn timed(work: impl Future<Output = Result<(), AuthError>>) -> Duration {
        let began = tokio::time::Instant::now();
        work.await.unwrap();
        began.elapsed()
    }

    #[test]
    fn an_ipv6_source_counts_by_its_64() {
        assert_eq!(source_key("2001:db8:1:2:aaaa::1"), source_key("2001:db8:1:2:ffff::9"));
        assert_ne!(source_key("2001:db8:1:2::1"), source_key("2001:db8:1:3::1"));
        assert_eq!(source_key("192.0.2.1"), "192.0.2.1");
    }

    #[tokio::test]
    async fn a_link_is_single_use_superseded_by_a_newer_one_and_dead_once_expired() {
        let bed = bed();
        sign_up(&bed, NEW).await.unwrap();
        let first = bed.mailer.last_token(NEW).unwrap();
        bed.registration.resend_verification(NEW, &meta("192.0.2.1")).await.unwrap();
        let second = bed.mailer.last_token(NEW).unwrap();
        assert_ne!(first, second);
        assert!(
            matches!(
                bed.registration.verify_email(&first, &PASSWORD.to_owned().into(), &meta("192.0.2.1")).await,
                Err(AuthError::InvalidLink)
            ),
            "superseded"
        );
        bed.bed.clock.advance(bed.bed.config.email_verify_ttl);
        assert!(
            matches!(
                bed.registration.verify_email(&second, &PASSWORD.to_owned().into(), &meta("192.0.2.1")).await,
                Err(AuthError::InvalidLink)
            ),
            "expired"
        );
        for garbage in ["", "x", &"A".repeat(43), &format!("{second}x")] {
            assert!(matches!(
                bed.registration.verify_email(garbage, &PASSWORD.to_owned().into(), &meta("192.0.2.1")).await,
                Err(AuthError::InvalidLink)
            ));
        }
        // Stored only as its SHA-256, never as the secret itself.
        let stored = bed.bed.users.link_hashes();
        let raw: [u8; 32] = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &second)
            .unwrap()
            .try_into()
            .unwrap();
        assert!(stored.contains(&LinkToken::parse(&second).unwrap().hash().0));
        assert!(!stored.contains(&raw));
    }

    #[tokio::test]
    async fn a_reset_link_is_no_verification_link_and_a_verification_link_no_reset_link() {
        let bed = bed();
        sign_up(&bed, NEW).await.unwrap();
        let verify = bed.mailer.last_token(NEW).unwrap();
        bed.registration.forgot_password(ALICE.0, &meta("192.0.2.1")).await.unwrap();
        let reset = bed.mailer.last_token(ALICE.0).unwrap();
        assert!(matches!(
            bed.registration.verify_email(&reset, &PASSWORD.to_owned().into(), &meta("192.0.2.1")).await,
            Err(AuthError::InvalidLink)
        ));
        let new_password = "a brand new passphrase here".to_owned().into();
        assert!(matches!(
            bed.registration.reset_password(&verify, &new_password, &meta("192.0.2.1")).await,
            Err(AuthError::InvalidLink)
        ));
        // Both still work for what they are.
        bed.registration
            .verify_email(&verify, &PASSWORD.to_owned().into(), &meta("192.0.2.1"))
            .await
            .unwrap();
        bed.registration.reset_password(&reset, &new_password, &meta("192.0.2.1")).await.unwrap();
    }

    #[tokio::test]
    async fn a_reset_ends_every_session_clears_the_throttle_kills_older_links_and_tells_the_owner() {
        let bed = bed();
        let sessions = [login(&bed, ALICE.0, ALICE.1).await.unwrap(), login(&bed, ALICE.0, ALICE.1).await.unwrap()];
        for _ in 0..4 {
            assert!(login(&bed, ALICE.0, "a wrong password").await.is_err());
        }
        bed.registration.forgot_password(ALICE.0, &meta("192.0.2.1")).await.unwrap();
        let older = bed.mailer.last_token(ALICE.0).unwrap();
        bed.registration.forgot_password(ALICE.0, &meta("192.0.2.1")).await.unwrap();
        let newer = bed.mailer.last_token(ALICE.0).unwrap();
        let weak = bed.registration.reset_password(&newer, &"short".to_owned().into(), &meta("192.0.2.1")).await;
        assert!(
            matches!(weak, Err(AuthError::WeakPassword(_))),
            "the policy applies; the link survives a refusal"
        );
        bed.registration
            .reset_password(&newer, &"a brand new passphrase here".to_owned().into(), &meta("192.0.2.1"))
            .await
            .unwrap();
        for issued in &sessions {
            let session = bed.bed.sessions.get(&issued.refresh.session_id).await.unwrap().unwrap();
            assert!(
                !UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap().accepts(&session),
                "every session ended"
            );
        }
        assert_eq!(bed.bed.users.throttle(ALICE.0).attempts, 0, "throttle cleared");
        assert!(matches!(
            bed.bed.users.reserve_attempt(ALICE.0, bed.bed.clock.now()).await.unwrap(),
            AttemptReservation::Granted { .. }
        ));
        assert!(matches!(
            bed.registration
                .reset_password(&older, &"another fine passphrase".to_owned().into(), &meta("192.0.2.1"))
                .await,
            Err(AuthError::InvalidLink)
        ));
        assert!(matches!(
            bed.registration
                .reset_password(&newer, &"another fine passphrase".to_owned().into(), &meta("192.0.2.1"))
                .await,
            Err(AuthError::InvalidLink)
        ));
        assert!(bed.mailer.sent().last().unwrap().subject.contains("password was changed"));
        assert!(login(&bed, ALICE.0, ALICE.1).await.is_err());
        assert!(login(&bed, ALICE.0, "a brand new passphrase here").await.is_ok());
    }

    #[tokio::test]
    async fn unknown_unverified_and_disabled_addresses_get_the_same_answer_and_no_reset_link() {
        let bed = bed();
        sign_up(&bed, NEW).await.unwrap();
        assert!(UserStore::set_disabled(&*bed.bed.users, ALICE.0, true).await.unwrap());
        let before = bed.mailer.sent().len();
        for address in ["nobody@example.com", NEW, ALICE.0] {
            bed.registration.forgot_password(address, &meta("192.0.2.1")).await.unwrap();
        }
        assert_eq!(bed.mailer.sent().len(), before, "nothing sent");
    }

    #[tokio::test]
    async fn at_most_the_hourly_limit_of_mails_goes_to_one_address_and_to_one_source() {
        let bed = bed_with(&[("EMAIL_LIMIT_PER_HOUR", "3"), ("EMAIL_IP_LIMIT_PER_HOUR", "5")]);
        for _ in 0..5 {
            bed.registration.forgot_password(ALICE.0, &meta("192.0.2.1")).await.unwrap();
        }
        assert_eq!(bed.mailer.sent().len(), 3, "per address");
        bed.registration.forgot_password("nobody@example.com", &meta("192.0.2.1")).await.unwrap();
        sign_up(&bed, NEW).await.unwrap();
        assert!(
            UserStore::get(&*bed.bed.users, NEW).await.unwrap().is_none(),
            "the source is over its limit: nothing written"
        );
        bed.bed.clock.advance(3600);
        bed.registration.forgot_password(ALICE.0, &meta("192.0.2.1")).await.unwrap();
        assert_eq!(bed.mailer.sent().len(), 4, "a new hour");
    }

    #[tokio::test]
    async fn a_failing_mail_service_still_answers_alike_and_leaves_a_state_a_resend_repairs() {
        let bed = bed();
        bed.mailer.set_failing(true);
        sign_up(&bed, NEW).await.unwrap();
        assert!(
            UserStore::get(&*bed.bed.users, NEW).await.unwrap().is_some(),
            "the account and its link are written first"
        );
        bed.mailer.set_failing(false);
        bed.registration.resend_verification(NEW, &meta("192.0.2.1")).await.unwrap();
        let token = bed.mailer.last_token(NEW).unwrap();
        bed.registration
            .verify_email(&token, &PASSWORD.to_owned().into(), &meta("192.0.2.1"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn closed_sign_up_is_refused_and_bad_input_is_a_400() {
        let closed = bed_with(&[("SIGNUP", "closed")]);
        assert!(matches!(sign_up(&closed, NEW).await, Err(AuthError::SignupClosed)));
        assert!(closed.mailer.sent().is_empty());
        let bed = bed();
        let weak = bed.registration.sign_up(NEW, &"password".to_owned().into(), &meta("192.0.2.1")).await;
        assert!(matches!(weak, Err(AuthError::WeakPassword(_))));
        for bad in ["", "no-at-sign", "a@b", "a@@b.com", "a b@c.com", "a#b@c.com", "é@c.com", ".a@c.com", "a@-c.com"] {
            assert!(matches!(email_address(bad), Err(AuthError::InvalidRequest(_))), "{bad:?}");
        }
        assert_eq!(email_address(" A.B+tag@Sub.Example.COM ").unwrap(), "a.b+tag@sub.example.com");
        assert!(UserStore::get(&*bed.bed.users, NEW).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unverified_sign_up_past_its_time_frees_the_address() {
        let bed = bed();
        sign_up(&bed, NEW).await.unwrap();
        let first = UserStore::get(&*bed.bed.users, NEW).await.unwrap().unwrap();
        bed.bed.clock.advance(UNVERIFIED_ACCOUNT_SECS);
        assert!(matches!(login(&bed, NEW, PASSWORD).await, Err(AuthError::InvalidCredentials)), "gone");
        bed.registration
            .sign_up(NEW, &"another good passphrase".to_owned().into(), &meta("192.0.2.2"))
            .await
            .unwrap();
        let second = UserStore::get(&*bed.bed.users, NEW).await.unwrap().unwrap();
        assert_ne!(first.user_id, second.user_id, "a new account took the address");
    }
}
