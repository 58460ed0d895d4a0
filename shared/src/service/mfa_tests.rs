//! The second factor end to end over the in-memory stores: the login challenge, single use
//! of codes and challenges, the throttle, enrolment, step-up.

use std::sync::Arc;

use super::account::{AccountService, Caller};
use super::*;
use crate::factors::{FactorAnswer, Factors, RecoveryCode, TotpSecret, new_recovery_codes};
use crate::testing::{ALICE, TestBed, config};

fn meta() -> RequestMeta {
    RequestMeta::default()
}

/// Alice with TOTP on (secret returned) and the given recovery codes.
fn with_totp(bed: &TestBed, recovery: &[String]) -> TotpSecret {
    let secret = TotpSecret::generate();
    bed.factors.put(
        ALICE.0,
        Factors {
            totp: Some(secret.clone()),
            recovery_codes: recovery.iter().map(|c| RecoveryCode::hash_of(c)).collect(),
            ..Factors::default()
        },
    );
    secret
}

async fn challenge(bed: &TestBed) -> MfaChallenge {
    match bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap() {
        LoginOutcome::MfaRequired(challenge) => challenge,
        LoginOutcome::Signed(_) => panic!("signed in without a second factor"),
    }
}

fn code(secret: &TotpSecret, bed: &TestBed) -> FactorAnswer {
    FactorAnswer::Totp(secret.code_at(bed.clock.now()))
}

async fn answer(bed: &TestBed, challenge: &MfaChallenge, answer: &FactorAnswer) -> Result<IssuedTokens, AuthError> {
    bed.service.complete_mfa(&challenge.token.encode(), answer, &meta()).await
}

#[tokio::test]
async fn a_right_password_with_totp_on_is_a_challenge_and_a_code_completes_it_with_amr_kept_by_refresh() {
    let bed = TestBed::new(config());
    let secret = with_totp(&bed, &new_recovery_codes().0);
    let challenge = challenge(&bed).await;
    assert_eq!(challenge.methods, ["totp", "recovery_code"]);
    assert_eq!(challenge.expires_in, MFA_CHALLENGE_TTL);
    assert_eq!(bed.sessions.writes(), 0, "no session before the second factor");
    let stored = bed.factors.stored_challenge(&challenge.token.hash()).unwrap();
    assert_eq!(stored.username, ALICE.0, "only the hash of the mfa_token is the key");

    let login_at = bed.clock.now();
    bed.clock.advance(20);
    let issued = answer(&bed, &challenge, &code(&secret, &bed)).await.unwrap();
    assert_eq!(issued.access.claims.amr, ["pwd", "otp", "mfa"]);
    assert_eq!(issued.access.claims.auth_time, login_at + 20);
    assert!(issued.access.claims.scope.split(' ').any(|s| s == crate::claims::MFA_SCOPE));

    bed.clock.advance(600);
    let refreshed = bed.service.refresh(Some(&issued.refresh.encode()), &meta()).await.unwrap();
    assert_eq!(refreshed.access.claims.amr, ["pwd", "otp", "mfa"], "a refresh keeps amr");
    assert_eq!(refreshed.access.claims.auth_time, login_at + 20, "and auth_time");
}

#[tokio::test]
async fn a_user_without_a_factor_gets_pwd_only() {
    let bed = TestBed::new(config());
    let outcome = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap();
    let issued = outcome.signed().unwrap();
    assert_eq!(issued.access.claims.amr, ["pwd"]);
    assert!(!issued.access.claims.scope.contains("amr:mfa"));
}

#[tokio::test]
async fn a_code_passes_once_even_when_two_challenges_race_with_it() {
    let bed = Arc::new(TestBed::new(config()));
    let secret = with_totp(&bed, &[]);
    let (first, second) = (challenge(&bed).await, challenge(&bed).await);
    let code = code(&secret, &bed);
    let (a, b) = tokio::join!(answer(&bed, &first, &code), answer(&bed, &second, &code));
    assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1, "exactly one of two parallel uses passes");
    let refused = if a.is_ok() { b } else { a };
    assert!(matches!(refused, Err(AuthError::InvalidCode)));
    // And later, with a fresh challenge, the same code is still refused.
    let third = challenge(&bed).await;
    assert!(matches!(answer(&bed, &third, &code).await, Err(AuthError::InvalidCode)));
    bed.clock.advance(30);
    let next = FactorAnswer::Totp(secret.code_at(bed.clock.now()));
    assert!(answer(&bed, &third, &next).await.is_ok(), "the next step's code passes");
}

#[tokio::test]
async fn the_mfa_token_is_single_use_expires_and_dies_after_five_wrong_answers() {
    let bed = TestBed::new(config());
    let secret = with_totp(&bed, &[]);
    let used = challenge(&bed).await;
    answer(&bed, &used, &code(&secret, &bed)).await.unwrap();
    bed.clock.advance(30);
    assert!(matches!(answer(&bed, &used, &code(&secret, &bed)).await, Err(AuthError::InvalidToken)), "used");

    let lapsed = challenge(&bed).await;
    bed.clock.advance(MFA_CHALLENGE_TTL);
    assert!(
        matches!(answer(&bed, &lapsed, &code(&secret, &bed)).await, Err(AuthError::InvalidToken)),
        "expired"
    );

    // Wrong answers: each counted; the fifth kills the challenge. (The fourth also starts the
    // account's throttle, the password check's attempt counting as the first: wait it out.)
    bed.clock.advance(3600);
    let guessed = challenge(&bed).await;
    for i in 0..MAX_CHALLENGE_FAILURES {
        if i == 4 {
            bed.clock.advance(31);
        }
        let wrong = answer(&bed, &guessed, &FactorAnswer::Totp("000000".into())).await;
        assert!(matches!(wrong, Err(AuthError::InvalidCode)), "answer {i}: {wrong:?}");
    }
    assert!(
        bed.factors.stored_challenge(&guessed.token.hash()).is_none(),
        "deleted at the last wrong answer"
    );
    bed.clock.advance(60);
    assert!(matches!(answer(&bed, &guessed, &code(&secret, &bed)).await, Err(AuthError::InvalidToken)));
}

#[tokio::test]
async fn wrong_codes_count_toward_the_accounts_throttle_and_a_right_password_does_not_reset_it() {
    let bed = TestBed::new(config());
    let secret = with_totp(&bed, &[]);
    // Two right passwords and three wrong codes: five attempts, the throttle starts.
    let first = challenge(&bed).await;
    for _ in 0..2 {
        assert!(matches!(
            answer(&bed, &first, &FactorAnswer::Totp("000000".into())).await,
            Err(AuthError::InvalidCode)
        ));
    }
    let second = challenge(&bed).await;
    assert!(matches!(
        answer(&bed, &second, &FactorAnswer::Totp("111111".into())).await,
        Err(AuthError::InvalidCode)
    ));
    assert!(matches!(
        answer(&bed, &second, &code(&secret, &bed)).await,
        Err(AuthError::TooManyAttempts { .. })
    ));
    assert!(matches!(
        bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await,
        Err(AuthError::TooManyAttempts { .. })
    ));
}

#[tokio::test]
async fn a_recovery_code_passes_once_and_only_its_hash_is_stored() {
    let bed = TestBed::new(config());
    let (codes, _) = new_recovery_codes();
    with_totp(&bed, &codes);
    let stored = bed.factors.peek(ALICE.0).unwrap();
    assert!(
        stored
            .recovery_codes
            .iter()
            .all(|h| codes.iter().all(|c| h.0 != c.as_bytes()[..]) && h.0.len() == 32)
    );
    let first = challenge(&bed).await;
    let issued = answer(&bed, &first, &FactorAnswer::RecoveryCode(codes[0].to_uppercase())).await.unwrap();
    assert_eq!(issued.access.claims.amr, ["pwd", "otp", "mfa"]);
    assert_eq!(bed.factors.peek(ALICE.0).unwrap().recovery_codes.len(), codes.len() - 1);
    let second = challenge(&bed).await;
    assert!(matches!(
        answer(&bed, &second, &FactorAnswer::RecoveryCode(codes[0].clone())).await,
        Err(AuthError::InvalidCode)
    ));
}

#[tokio::test]
async fn a_password_reset_since_the_challenge_kills_it_and_the_next_login_still_asks() {
    let bed = TestBed::new(config());
    let secret = with_totp(&bed, &[]);
    let before = challenge(&bed).await;
    let hash = crate::password::hash_password(&"a brand new passphrase here".to_owned().into()).unwrap();
    assert!(bed.users.set_password(ALICE.0, &hash, bed.clock.now()).await.unwrap());
    assert!(matches!(answer(&bed, &before, &code(&secret, &bed)).await, Err(AuthError::InvalidToken)));
    let outcome = bed
        .service
        .login(ALICE.0, "a brand new passphrase here".to_owned().into(), &meta())
        .await
        .unwrap();
    assert!(
        matches!(outcome, LoginOutcome::MfaRequired(_)),
        "a new password does not skip the second factor"
    );
}

fn account(bed: &TestBed) -> AccountService {
    AccountService::new(&bed.config, bed.users.clone(), bed.sessions.clone(), bed.factors.clone(), bed.clock.clone())
}

async fn caller(account: &AccountService, issued: &IssuedTokens) -> Caller {
    account.caller(&issued.access.claims.sub, &issued.access.claims.sid).await.unwrap()
}

#[tokio::test]
async fn enrolment_is_pending_until_a_code_confirms_it_and_returns_ten_recovery_codes() {
    let bed = TestBed::new(config());
    let account = account(&bed);
    let issued = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap().signed().unwrap();
    let me = caller(&account, &issued).await;
    let enrolment = account.start_totp(&me).await.unwrap();
    assert!(enrolment.otpauth_uri.starts_with("otpauth://totp/") && enrolment.otpauth_uri.contains(&enrolment.secret));
    assert!(!account.mfa_status(&me).await.unwrap().totp, "pending is not on");
    assert!(matches!(
        bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap(),
        LoginOutcome::Signed(_)
    ));

    let pending = bed.factors.peek(ALICE.0).unwrap().pending.unwrap().0;
    assert!(matches!(account.confirm_totp(&me, "000000", &meta()).await, Err(AuthError::InvalidCode)));
    let codes = account.confirm_totp(&me, &pending.code_at(bed.clock.now()), &meta()).await.unwrap();
    assert_eq!(codes.len(), 10);
    let status = account.mfa_status(&me).await.unwrap();
    assert!(status.totp && status.recovery_codes_left == 10);
    assert!(matches!(account.start_totp(&me).await, Err(AuthError::MfaAlreadyEnabled)));
    assert!(matches!(
        bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap(),
        LoginOutcome::MfaRequired(_)
    ));
}

#[tokio::test]
async fn turning_totp_off_new_codes_and_a_password_change_need_a_recent_step_up() {
    let bed = TestBed::new(config());
    let account = account(&bed);
    let secret = with_totp(&bed, &new_recovery_codes().0);
    let c = challenge(&bed).await;
    let issued = answer(&bed, &c, &code(&secret, &bed)).await.unwrap();

    // Right after the MFA login: allowed. Past STEP_UP_MAX_AGE: refused.
    let me = caller(&account, &issued).await;
    assert!(account.regenerate_recovery_codes(&me, &meta()).await.is_ok());
    bed.clock.advance(bed.config.step_up_max_age + 1);
    let me = caller(&account, &issued).await;
    assert!(matches!(account.disable_totp(&me, &meta()).await, Err(AuthError::StepUpRequired)));
    assert!(matches!(account.regenerate_recovery_codes(&me, &meta()).await, Err(AuthError::StepUpRequired)));
    let change = account
        .change_password(&me, &ALICE.1.to_owned().into(), &"quartz lantern orbit meadow".to_owned().into(), &meta())
        .await;
    assert!(matches!(change, Err(AuthError::StepUpRequired)));

    // A step-up with the last code again is refused; with a fresh one it passes.
    assert!(matches!(
        account.step_up(&me, &FactorAnswer::Totp("000000".into()), None, &meta()).await,
        Err(AuthError::InvalidCode)
    ));
    account.step_up(&me, &code(&secret, &bed), None, &meta()).await.unwrap();
    let me = caller(&account, &issued).await;
    assert_eq!(me.session.auth.auth_time, bed.clock.now());
    account.disable_totp(&me, &meta()).await.unwrap();
    assert!(bed.factors.peek(ALICE.0).unwrap().totp.is_none());
    assert!(matches!(
        bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap(),
        LoginOutcome::Signed(_)
    ));
}

#[tokio::test]
async fn a_password_only_session_steps_up_and_its_next_refresh_carries_the_second_factor() {
    let bed = TestBed::new(config());
    let account = account(&bed);
    let issued = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap().signed().unwrap();
    let secret = with_totp(&bed, &[]);
    let me = caller(&account, &issued).await;
    bed.clock.advance(5);
    account.step_up(&me, &code(&secret, &bed), None, &meta()).await.unwrap();
    let refreshed = bed.service.refresh(Some(&issued.refresh.encode()), &meta()).await.unwrap();
    assert_eq!(refreshed.access.claims.amr, ["pwd", "otp", "mfa"]);
    assert_eq!(refreshed.access.claims.auth_time, bed.clock.now());
}

#[tokio::test]
async fn a_stolen_token_adds_no_factor_a_passkey_user_must_step_up_and_an_old_session_must_sign_in_again() {
    let bed = TestBed::new(config());
    let account = account(&bed);
    let issued = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap().signed().unwrap();
    // A user whose only factor is a passkey: a password-only session may not add TOTP.
    let passkey = crate::passkeys::StoredPasskey {
        id: "cred".into(),
        name: "laptop".into(),
        created_at: 1,
        last_used_at: 0,
        key: "{}".into(),
    };
    bed.factors.put(
        ALICE.0,
        Factors {
            passkeys: vec![passkey],
            ..Factors::default()
        },
    );
    let me = caller(&account, &issued).await;
    assert!(matches!(account.start_totp(&me).await, Err(AuthError::StepUpRequired)));
    assert!(matches!(account.confirm_totp(&me, "123456", &meta()).await, Err(AuthError::StepUpRequired)));
    // A user with no factor: only a recent sign-in may add the first one.
    bed.factors.put(ALICE.0, Factors::default());
    assert!(account.start_totp(&me).await.is_ok());
    bed.clock.advance(bed.config.step_up_max_age + 1);
    assert!(matches!(account.start_totp(&me).await, Err(AuthError::ReauthenticationRequired)));
}
