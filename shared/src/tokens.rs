//! Token formats: the access JWT (issue and verify) and the opaque refresh token with its
//! hash chain. Verification is strict on purpose: we only ever accept tokens we issued.

use std::borrow::Cow;
use std::fmt;

use aws_lc_rs::{constant_time, digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::claims::{AccessClaims, Authentication, MFA_SCOPE, amr};
use crate::config::{Config, MAX_ACCESS_TOKEN_TTL};
use crate::error::AuthError;
use crate::keys::{KeyAlgorithm, PublicKeys, SigningKeys};
use crate::random::{random_bytes, random_id};

/// The `typ` header of our access tokens (RFC 9068); any other value is rejected.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Tokens longer than this are rejected before any decoding.
pub const MAX_ACCESS_TOKEN_LEN: usize = 8 * 1024;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 30;
/// The longest hash-chain walk when classifying an old refresh token.
pub const MAX_CHAIN_WALK: u64 = 10_000;

/// Why an access token was refused. Never shown to the caller (every failure is the same
/// deny); logged as the audit reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Over [`MAX_ACCESS_TOKEN_LEN`].
    TooLong,
    /// Not three base64url parts, or a header that is not our exact JSON shape.
    Malformed,
    /// `typ` is not `at+jwt`.
    WrongType,
    /// The `kid` is not in the key set.
    UnknownKey,
    /// The header's `alg` differs from the algorithm pinned to the key.
    AlgorithmMismatch,
    /// Bad signature, wrong `iss`/`aud`, missing or mistyped claims.
    Invalid,
    /// `exp` passed.
    Expired,
    /// `iat` or `nbf` in the future.
    NotYetValid,
}

impl Rejection {
    /// A short stable name for the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLong => "too_long",
            Self::Malformed => "malformed",
            Self::WrongType => "wrong_typ",
            Self::UnknownKey => "unknown_kid",
            Self::AlgorithmMismatch => "alg_mismatch",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
        }
    }
}

/// The JOSE header of an access token, read and checked: `typ` is `at+jwt`, and nothing
/// but `alg`, `typ` and `kid` is present.
#[derive(Debug)]
pub struct AccessTokenHeader {
    /// Algorithm named by the token (`None`: a name we do not know, such as `none`); only
    /// compared against the key's pinned algorithm.
    pub alg: Option<Algorithm>,
    /// Which key signed it.
    pub kid: String,
}

/// The JOSE header exactly as we issue it, borrowed from the decoded bytes. Unknown members
/// (`crit`, `jwk`, `jku`, `x5u`, `x5c`, ...) and duplicate members fail to parse.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    typ: Cow<'a, str>,
    #[serde(borrow)]
    kid: Cow<'a, str>,
}

/// The longest decoded header read; ours is under 60 bytes.
const MAX_HEADER_LEN: usize = 256;

impl AccessTokenHeader {
    /// Reads and checks the header before any key is looked up or any signature checked.
    pub fn read(token: &str) -> Result<Self, Rejection> {
        if token.len() > MAX_ACCESS_TOKEN_LEN {
            return Err(Rejection::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(Rejection::Malformed);
        };
        let mut json = [0u8; MAX_HEADER_LEN];
        let len = URL_SAFE_NO_PAD.decode_slice(header, &mut json).map_err(|_| Rejection::Malformed)?;
        let header: RawHeader = serde_json::from_slice(&json[..len]).map_err(|_| Rejection::Malformed)?;
        if header.typ != ACCESS_TOKEN_TYP {
            return Err(Rejection::WrongType);
        }
        Ok(Self {
            alg: header.alg.parse().ok(),
            kid: header.kid.into_owned(),
        })
    }
}

/// A freshly signed access token. Its `Debug` shows the claims, never the token.
pub struct IssuedAccessToken {
    /// The compact JWT.
    pub token: String,
    /// Its lifetime in seconds (`expires_in`).
    pub expires_in: u64,
    /// Its claims, for the audit log.
    pub claims: AccessClaims,
}

impl fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("claims", &self.claims)
            .finish()
    }
}

/// Issues and verifies access tokens for one issuer and audience. Built once per cold
/// start; holds one prepared `Validation` per supported algorithm so verifying allocates
/// nothing for settings.
pub struct AccessTokens {
    issuer: String,
    audience: String,
    ttl: u64,
    validations: Vec<(Algorithm, Validation)>,
}

impl AccessTokens {
    /// Prepares issuing and validation from the configuration.
    pub fn new(config: &Config) -> Self {
        let validations = KeyAlgorithm::ALL
            .into_iter()
            .map(|alg| (alg.algorithm(), Self::validation(alg.algorithm(), &config.issuer, &config.audience)))
            .collect();
        Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.access_token_ttl,
            validations,
        }
    }

    /// Every setting of `jsonwebtoken`'s validation, stated explicitly (its defaults are not
    /// ours: 60 s leeway, `iss`/`aud` only checked when set, no `typ` check). Other
    /// providers' ID tokens are verified with the same settings (`federation::id_token`).
    pub(crate) fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
        let mut v = Validation::new(alg);
        // SECURITY: exactly one algorithm, the one pinned to the key, never the header's say-so.
        v.algorithms = vec![alg];
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_aud = true;
        v.leeway = LEEWAY_SECS;
        v.reject_tokens_expiring_in_less_than = 0;
        // Time claims are checked in `verify` against the injected clock, so tests can pin time.
        v.validate_exp = false;
        v.validate_nbf = false;
        v
    }

    /// Signs a new access token with the active key, carrying how the session was
    /// authenticated (`amr`, `auth_time`).
    pub fn issue(
        &self,
        keys: &SigningKeys,
        user_id: &str,
        session_id: &str,
        roles: &[String],
        auth: &Authentication,
        now: u64,
    ) -> Result<IssuedAccessToken, AuthError> {
        let key = keys.active();
        // SECURITY: the MFA scope only from `amr`, never from a role that carries its name
        // (alone, or after a space: API Gateway splits `scope` on spaces).
        let mut scope: Vec<&str> = roles.iter().flat_map(|r| r.split_whitespace()).filter(|r| *r != MFA_SCOPE).collect();
        if amr::has_second_factor(&auth.amr) {
            scope.push(MFA_SCOPE);
        }
        let scope = scope.join(" ");
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            jti: random_id(),
            iat: now,
            exp: now + self.ttl,
            nbf: None,
            roles: roles.to_vec(),
            scope,
            amr: auth.amr.clone(),
            auth_time: auth.auth_time,
        };
        let token = key
            .sign_jwt(ACCESS_TOKEN_TYP, &claims)
            .map_err(|e| AuthError::unavailable("signing access token", e))?;
        Ok(IssuedAccessToken {
            token,
            expires_in: self.ttl,
            claims,
        })
    }

    /// Verifies a token whose header was already read with [`AccessTokenHeader::read`].
    pub fn verify(&self, keys: &PublicKeys, token: &str, header: &AccessTokenHeader, now: u64) -> Result<AccessClaims, Rejection> {
        let key = keys.verifying_key(&header.kid).ok_or(Rejection::UnknownKey)?;
        // SECURITY: the algorithm comes from the published key; a header naming another one is refused.
        if header.alg != Some(key.algorithm) {
            return Err(Rejection::AlgorithmMismatch);
        }
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == key.algorithm)
            .map(|(_, v)| v)
            .ok_or(Rejection::Invalid)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, validation)
            .map_err(|_| Rejection::Invalid)?
            .claims;
        if now > claims.exp.saturating_add(LEEWAY_SECS) {
            return Err(Rejection::Expired);
        }
        // We never issue longer-lived tokens; one that claims to be is not ours to trust.
        if claims.exp.saturating_sub(claims.iat) > MAX_ACCESS_TOKEN_TTL {
            return Err(Rejection::Invalid);
        }
        if claims.iat > now + LEEWAY_SECS || claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(Rejection::NotYetValid);
        }
        Ok(claims)
    }
}

/// A session id: 128 random bits, base64url without padding (22 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A new random session id.
    pub fn generate() -> Self {
        Self(random_id())
    }
    /// Accepts only the exact shape we generate.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == 22 && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 16);
        ok.then(|| Self(s.to_owned()))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a refresh secret: the only form in which a refresh token is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Compares in constant time.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        // SECURITY: constant-time, so response timing does not reveal how much of a hash matched.
        constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
    /// From stored bytes; anything but 32 bytes is not a hash of ours.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// The secret part of a refresh token. Never printed.
#[derive(Clone)]
pub struct RefreshSecret([u8; 32]);

impl fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSecret(..)")
    }
}

/// A refresh token `<session_id>.<generation>.<secret>`.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// The session it belongs to.
    pub session_id: SessionId,
    /// How many rotations the session had when this token was issued.
    pub generation: u64,
    secret: RefreshSecret,
}

impl RefreshToken {
    /// The first token of a new session, with a secret from the OS CSPRNG.
    pub fn start(session_id: SessionId) -> Self {
        Self {
            session_id,
            generation: 0,
            secret: RefreshSecret(random_bytes()),
        }
    }

    /// The first token of a session from a given secret, so that every run of the protocol
    /// model (`shared/tests/session_model.rs`) holds the same tokens. No function calls it.
    #[cfg(any(test, feature = "test-util"))]
    pub fn start_from(session_id: SessionId, secret: [u8; 32]) -> Self {
        Self {
            session_id,
            generation: 0,
            secret: RefreshSecret(secret),
        }
    }

    /// Parses the exact format we issue; anything else is `invalid_token`.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let mut parts = s.split('.');
        let (Some(sid), Some(generation), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(AuthError::InvalidToken);
        };
        let session_id = SessionId::parse(sid).ok_or(AuthError::InvalidToken)?;
        // Up to u64::MAX's 20 digits (the parse refuses more): a bound of 19 refused the
        // encoding of every generation from 10^19 on (found by the grammar property test).
        let canonical = !generation.is_empty()
            && generation.len() <= 20
            && generation.bytes().all(|b| b.is_ascii_digit())
            && (generation == "0" || !generation.starts_with('0'));
        let generation = generation.parse::<u64>().ok().filter(|_| canonical).ok_or(AuthError::InvalidToken)?;
        if secret.len() != 43 {
            return Err(AuthError::InvalidToken);
        }
        let bytes = URL_SAFE_NO_PAD.decode(secret).map_err(|_| AuthError::InvalidToken)?;
        let secret = RefreshSecret(bytes.try_into().map_err(|_| AuthError::InvalidToken)?);
        Ok(Self {
            session_id,
            generation,
            secret,
        })
    }

    /// The wire form. Goes only into a `Set-Cookie` header or a response body.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.session_id, self.generation, URL_SAFE_NO_PAD.encode(self.secret.0))
    }

    /// What is stored for this token.
    pub fn hash(&self) -> TokenHash {
        let d = digest::digest(&digest::SHA256, &self.secret.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        TokenHash(out)
    }

    /// The next token of the chain:
    /// `secret_{n+1} = HMAC-SHA256(pepper, session_id ‖ n+1 ‖ secret_n)`.
    pub fn successor(&self, pepper: &hmac::Key) -> Self {
        let generation = self.generation + 1;
        let mut ctx = hmac::Context::with_key(pepper);
        ctx.update(self.session_id.as_str().as_bytes());
        ctx.update(&generation.to_be_bytes());
        ctx.update(&self.secret.0);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(ctx.sign().as_ref());
        Self {
            session_id: self.session_id.clone(),
            generation,
            secret: RefreshSecret(secret),
        }
    }

    /// Walks the chain forward from this token to `generation` and returns that token if
    /// its hash is `stored` (constant-time). Refuses walks over [`MAX_CHAIN_WALK`] steps, so
    /// a token from far in the past costs at most the bound.
    pub fn descendant_matching(&self, pepper: &hmac::Key, generation: u64, stored: &TokenHash) -> Option<Self> {
        if generation <= self.generation || generation - self.generation > MAX_CHAIN_WALK {
            return None;
        }
        let mut token = self.clone();
        while token.generation < generation {
            token = token.successor(pepper);
        }
        token.hash().ct_eq(stored).then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn pepper() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, b"pepper-pepper-pepper-pepper-pepp")
    }

    #[test]
    fn a_refresh_token_of_any_u64_generation_round_trips_and_one_past_it_is_refused() {
        let mut token = RefreshToken::start(SessionId::generate());
        for generation in [10_000_000_000_000_000_000, u64::MAX] {
            token.generation = generation;
            assert_eq!(RefreshToken::parse(&token.encode()).unwrap().generation, generation);
        }
        let past = token.encode().replace(&u64::MAX.to_string(), "18446744073709551616");
        assert!(RefreshToken::parse(&past).is_err());
    }

    #[test]
    fn refresh_token_round_trips_and_rejects_other_shapes() {
        let token = RefreshToken::start(SessionId::generate());
        let parsed = RefreshToken::parse(&token.encode()).unwrap();
        assert_eq!(parsed.encode(), token.encode());
        assert!(parsed.hash().ct_eq(&token.hash()));
        let wire = token.encode();
        let (sid, rest) = wire.split_once('.').unwrap();
        let secret = rest.split_once('.').unwrap().1;
        for bad in [
            String::new(),
            "a.b.c".into(),
            format!("{sid}.01.{secret}"),
            format!("{sid}.-1.{secret}"),
            format!("{sid}.99999999999999999999.{secret}"),
            format!("{sid}.0.{secret}="),
            format!("{sid}.0.{secret}.x"),
            format!("{sid}x.0.{secret}"),
        ] {
            assert!(RefreshToken::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn successor_is_deterministic_and_walkable() {
        let t0 = RefreshToken::start(SessionId::generate());
        let t1 = t0.successor(&pepper());
        let t3 = t1.successor(&pepper()).successor(&pepper());
        assert_eq!(t1.generation, 1);
        assert_eq!(t0.successor(&pepper()).encode(), t1.encode());
        assert_eq!(t0.descendant_matching(&pepper(), 3, &t3.hash()).unwrap().encode(), t3.encode());
        assert!(t0.descendant_matching(&pepper(), 2, &t3.hash()).is_none());
        assert!(t3.descendant_matching(&pepper(), 1, &t1.hash()).is_none());
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another-pepper-another-pepper-00");
        assert!(t0.descendant_matching(&other, 3, &t3.hash()).is_none());
    }

    #[test]
    fn chain_walk_is_bounded() {
        let t0 = RefreshToken::start(SessionId::generate());
        assert!(t0.descendant_matching(&pepper(), MAX_CHAIN_WALK + 1, &t0.hash()).is_none());
    }

    fn issue_and_verify(now_issue: u64, now_verify: u64) -> Result<AccessClaims, Rejection> {
        let config = testing::config();
        let tokens = AccessTokens::new(&config);
        let issued = tokens
            .issue(
                &testing::signing_keys(),
                "user-1",
                "sid-1",
                &["admin".into()],
                &Authentication::password(now_issue),
                now_issue,
            )
            .unwrap();
        let header = AccessTokenHeader::read(&issued.token)?;
        tokens.verify(&testing::public_keys(), &issued.token, &header, now_verify)
    }

    #[test]
    fn access_token_verifies_within_its_lifetime() {
        let claims = issue_and_verify(1_000_000, 1_000_100).unwrap();
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.sid, "sid-1");
        assert_eq!(claims.roles, vec!["admin".to_string()]);
        assert_eq!(claims.exp, 1_000_900);
        assert_eq!(claims.scope, "admin");
    }

    #[test]
    fn access_token_expiry_and_future_iat_are_enforced_with_leeway() {
        assert!(issue_and_verify(1_000_000, 1_000_900 + LEEWAY_SECS).is_ok());
        assert_eq!(issue_and_verify(1_000_000, 1_000_901 + LEEWAY_SECS).unwrap_err(), Rejection::Expired);
        assert_eq!(issue_and_verify(1_000_000, 1_000_000 - LEEWAY_SECS - 1).unwrap_err(), Rejection::NotYetValid);
    }

    #[test]
    fn a_header_naming_another_algorithm_than_the_keys_is_refused_before_the_signature_is_checked() {
        let tokens = AccessTokens::new(&testing::config());
        let token = tokens
            .issue(
                &testing::signing_keys(),
                "user-1",
                "sid-1",
                &[],
                &Authentication::password(1_000_000),
                1_000_000,
            )
            .unwrap()
            .token;
        let (_, rest) = token.split_once('.').unwrap();
        let public = testing::public_keys();
        // k1 is ES256, k0 EdDSA, k2 RS256: every other name under each kid, HMAC ones included
        // (an HS256 token keyed with the public key's bytes never reaches an HMAC).
        for (kid, own) in [("k1", "ES256"), ("k0", "EdDSA"), ("k2", "RS256")] {
            for alg in ["ES256", "EdDSA", "RS256", "HS256", "HS384", "HS512", "PS256", "ES384"] {
                let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#));
                let forged = format!("{header}.{rest}");
                let read = AccessTokenHeader::read(&forged).unwrap();
                let verdict = tokens.verify(&public, &forged, &read, 1_000_000);
                if alg == own {
                    assert_ne!(verdict.err(), Some(Rejection::AlgorithmMismatch), "{kid} {alg}: its own algorithm");
                } else {
                    assert_eq!(verdict.unwrap_err(), Rejection::AlgorithmMismatch, "{kid} {alg}");
                }
            }
        }
    }

    #[test]
    fn header_must_be_exactly_ours() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let with = |h: &str| format!("{}.e30.c2ln", b64(h));
        assert!(AccessTokenHeader::read(&with(r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#)).is_ok());
        for bad in [
            r#"{"alg":"none","typ":"at+jwt","kid":"k1","crit":["exp"]}"#,
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k1","jwk":{}}"#,
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k1","kid":"k2"}"#,
            r#"{"alg":"HS256","kid":"k1"}"#,
            r#"["HS256"]"#,
        ] {
            assert_eq!(AccessTokenHeader::read(&with(bad)).unwrap_err(), Rejection::Malformed, "{bad}");
        }
        assert_eq!(
            AccessTokenHeader::read(&with(r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#)).unwrap_err(),
            Rejection::WrongType
        );
        assert_eq!(AccessTokenHeader::read(&"a".repeat(MAX_ACCESS_TOKEN_LEN + 1)).unwrap_err(), Rejection::TooLong);
    }

    /// The hand-written parsers against the grammar they implement, written out again
    /// here, on generated, mutated and arbitrary input: each accepts exactly what the
    /// grammar does, gives back what it read, and never panics. `PROPTEST_CASES=N` runs N
    /// cases each instead of 2,000.
    mod grammar {
        use proptest::prelude::*;

        use super::*;

        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        /// base64url of exactly `bytes` bytes, unpadded and canonical: its length, its
        /// alphabet, and the last character's unused low bits zero.
        fn canonical_b64(s: &str, bytes: usize) -> bool {
            let len = (bytes * 8).div_ceil(6);
            let unused = len * 6 - bytes * 8;
            s.len() == len
                && s.bytes().all(|b| ALPHABET.as_bytes().contains(&b))
                && ALPHABET.find(&s[len - 1..]).is_some_and(|last| last & ((1 << unused) - 1) == 0)
        }

        /// `<session id>.<generation>.<secret>`: 16 and 32 bytes of base64url, and a
        /// generation in decimal without leading zeros that fits a u64.
        fn refresh_grammar(s: &str) -> bool {
            let parts: Vec<&str> = s.split('.').collect();
            let [sid, generation, secret] = parts[..] else { return false };
            let decimal =
                generation.bytes().all(|b| b.is_ascii_digit()) && (generation == "0" || !generation.starts_with('0')) && generation.parse::<u64>().is_ok();
            canonical_b64(sid, 16) && decimal && canonical_b64(secret, 32)
        }

        /// A valid token, or one with a character replaced, inserted or removed, or any text.
        fn candidates() -> impl Strategy<Value = String> {
            let valid = (any::<[u8; 16]>(), any::<u64>(), any::<[u8; 32]>())
                .prop_map(|(sid, generation, secret)| format!("{}.{generation}.{}", URL_SAFE_NO_PAD.encode(sid), URL_SAFE_NO_PAD.encode(secret)));
            let edits = prop::sample::select(&['.', '=', '+', '/', '0', 'A', 'w', '_', 'é', ' '][..]);
            let mutated = (valid.clone(), any::<usize>(), edits, 0..3u8).prop_map(|(token, at, c, how)| testing::edit(&token, at, c, how));
            prop_oneof![valid, mutated, "\\PC{0,100}", "[A-Za-z0-9_.=-]{0,80}"]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(testing::property_cases()))]

            #[test]
            fn a_refresh_token_is_accepted_exactly_when_it_is_in_the_grammar_and_reads_back_as_sent(s in candidates()) {
                let parsed = RefreshToken::parse(&s);
                prop_assert_eq!(parsed.is_ok(), refresh_grammar(&s), "{}", s);
                if let Ok(token) = parsed {
                    prop_assert_eq!(token.encode(), s);
                }
            }

            #[test]
            fn a_session_id_is_accepted_exactly_when_it_is_16_bytes_of_canonical_base64url(s in candidates()) {
                let sid = s.split('.').next().unwrap_or_default();
                prop_assert_eq!(SessionId::parse(sid).is_some(), canonical_b64(sid, 16), "{}", sid);
                prop_assert_eq!(SessionId::parse(&s).is_some(), canonical_b64(&s, 16), "{}", s);
            }

            #[test]
            fn an_access_token_header_is_read_only_when_it_is_exactly_alg_typ_kid_and_gives_the_kid_back(
                members in prop::collection::btree_map(prop::sample::select(&["alg", "typ", "kid", "crit", "jwk", "x5u", "b64"][..]), "\\PC{0,40}", 0..5),
                at_jwt in any::<bool>(),
                payload in "[A-Za-z0-9_-]{0,20}",
            ) {
                let mut members: serde_json::Map<String, serde_json::Value> = members.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
                if at_jwt && members.contains_key("typ") {
                    members.insert("typ".into(), ACCESS_TOKEN_TYP.into());
                }
                let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&members).unwrap());
                let token = format!("{encoded}.{payload}.sig");
                let ours = members.len() == 3 && ["alg", "typ", "kid"].iter().all(|k| members.contains_key(*k));
                // The header is decoded into a stack buffer, sized by base64's estimate.
                let fits = encoded.len().div_ceil(4) * 3 <= MAX_HEADER_LEN;
                match AccessTokenHeader::read(&token) {
                    Ok(header) => {
                        prop_assert!(ours && members["typ"] == ACCESS_TOKEN_TYP && fits, "{}", token);
                        prop_assert_eq!(serde_json::Value::from(header.kid), members["kid"].clone());
                    }
                    Err(Rejection::WrongType) => prop_assert!(ours && members["typ"] != ACCESS_TOKEN_TYP),
                    Err(Rejection::Malformed) => prop_assert!(!ours || !fits, "{}", token),
                    Err(other) => prop_assert!(false, "{:?} for {}", other, token),
                }
            }

            #[test]
            fn any_text_as_an_access_token_is_refused_without_a_panic(s in "\\PC{0,300}", dots in 0..4usize) {
                let token = format!("{s}{}", ".".repeat(dots));
                if let Ok(header) = AccessTokenHeader::read(&token) {
                    // Only a header that really is ours passes, and the token still needs a key.
                    let (tokens, keys) = (AccessTokens::new(&testing::config()), testing::public_keys());
                    prop_assert!(tokens.verify(&keys, &token, &header, 1_700_000_000).is_err());
                }
            }
        }
    }

    mod mutations {
        use proptest::prelude::*;

        use super::*;

        const NOW: u64 = 1_700_000_000;

        fn fixture() -> (AccessTokens, PublicKeys, String) {
            let tokens = AccessTokens::new(&testing::config());
            let token = tokens
                .issue(
                    &testing::signing_keys(),
                    "user-1",
                    "sid-1",
                    &["admin".into()],
                    &Authentication::password(NOW),
                    NOW,
                )
                .unwrap()
                .token;
            (tokens, testing::public_keys(), token)
        }

        fn accepted(tokens: &AccessTokens, keys: &PublicKeys, token: &str) -> bool {
            AccessTokenHeader::read(token).and_then(|h| tokens.verify(keys, token, &h, NOW)).is_ok()
        }

        #[test]
        fn the_unmutated_token_is_accepted() {
            let (tokens, keys, token) = fixture();
            assert!(accepted(&tokens, &keys, &token));
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn no_byte_substitution_is_accepted(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
                let (tokens, keys, token) = fixture();
                let mut bytes = token.clone().into_bytes();
                let i = position.index(bytes.len());
                prop_assume!(bytes[i] != byte);
                bytes[i] = byte;
                // The authorizer only ever sees UTF-8 header values.
                if let Ok(mutated) = String::from_utf8(bytes) {
                    prop_assert!(!accepted(&tokens, &keys, &mutated), "accepted {mutated}");
                }
            }

            #[test]
            fn no_insertion_or_deletion_is_accepted(position in any::<prop::sample::Index>(), byte in any::<u8>(), insert in any::<bool>()) {
                let (tokens, keys, token) = fixture();
                let mut bytes = token.clone().into_bytes();
                let i = position.index(bytes.len());
                if insert { bytes.insert(i, byte) } else { bytes.remove(i); }
                if let Ok(mutated) = String::from_utf8(bytes) {
                    prop_assert!(!accepted(&tokens, &keys, &mutated), "accepted {mutated}");
                }
            }
        }
    }

    #[test]
    fn the_mfa_scope_comes_from_amr_never_from_a_role() {
        let tokens = AccessTokens::new(&testing::config());
        let roles: Vec<String> = vec!["amr:mfa".into(), "billing amr:mfa".into(), "admin".into()];
        let password = tokens
            .issue(&testing::signing_keys(), "u", "s", &roles, &Authentication::password(1), 1)
            .unwrap();
        assert_eq!(password.claims.scope, "billing admin");
        let second = tokens
            .issue(&testing::signing_keys(), "u", "s", &roles, &Authentication::password(1).with_otp(2), 2)
            .unwrap();
        assert_eq!(second.claims.scope, "billing admin amr:mfa");
    }
}
