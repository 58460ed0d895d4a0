//! The session protocol, model-checked: [stateright] explores every interleaving of a
//! user's browsers, a thief and the operator over the sessions table, within the bounds
//! below, and checks five properties in every state it reaches.
//!
//! The decisions are the functions the Lambdas run, not a re-description of them:
//! [`Rotation::permits`] and [`Rotation::apply`] (the rotation's conditional write, which
//! the DynamoDB store sends as its condition and update expressions), [`judge_refused`]
//! (what a refused rotation means: grace, reuse, forgery), [`judge_user`] (the user read
//! after a rotation), [`RevokeIf::permits`] and [`SessionRecord::revoke`] (the conditional
//! revocations), [`UserRecord::accepts`] and [`Standing::is_live`] (the strict authorizer's
//! check). What the model adds is what DynamoDB gives: each item's conditional write is
//! atomic, nothing across items is, and any request's answer may be lost after it committed.
//!
//! The worlds ([`WORLDS`]): browsers of one user (each a cookie jar; the first has two tabs
//! that refresh concurrently with the one cookie), a thief who can copy a jar's cookie once,
//! replay what it holds at any time and forge a token with a session's id and generation, and
//! one ending among logout, logout everywhere, a password change, a reset by e-mail and
//! disabling the account. Time moves in whole seconds; the grace window is one second, the
//! idle expiry three, the session's maximum age four.
//!
//! A client that follows the protocol sends only its one current cookie, never starts a
//! refresh while a request carrying another token is in flight, and its requests (a retry of
//! a lost answer included) reach the server within the grace window of that token's first
//! use; the thief does none of that.
//!
//! `cargo test -p auth-core --test session_model -- --nocapture` prints the state counts
//! and the time of each world; `SESSION_MODEL_BOUNDS=large` checks larger bounds (see
//! docs/security.md).

// A check fails by panicking; the model's helpers unwrap for the same reason. Its states are
// cloned and hashed, never moved around in bulk: the size of their variants does not matter.
#![allow(clippy::expect_used, clippy::large_enum_variant)]

use std::hash::{Hash, Hasher};
use std::time::Instant;

use auth_core::claims::Authentication;
use auth_core::error::AuthError;
use auth_core::service::refresh::{REUSE_DETECTED, Refused, judge_refused, judge_user};
use auth_core::store::{RevokeIf, Rotation, SessionRecord, Standing, UserRecord};
use auth_core::tokens::{RefreshToken, SessionId};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use stateright::{Checker, Model, Property};

const GRACE: u64 = 1;
const IDLE_TTL: u64 = 3;
const MAX_AGE: u64 = 4;
const PEPPER: &[u8; 32] = b"model-pepper-model-pepper-model!";
const USERNAME: &str = "user@example.com";
const USER_ID: &str = "u-1";

fn pepper() -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, PEPPER)
}

/// How far the checker looks: each count is how often the action may happen in one run.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    jars: usize,
    logins: u8,
    refreshes: u8,
    losses: u8,
    thief_refreshes: u8,
    max_time: u64,
}

/// The worlds `scripts/test.sh` checks (about 30 s here, a debug build): one browser with
/// two tabs and a thief, across the grace window; two devices of one user, each with its
/// own session, one of them ending the other's.
const WORLDS: [(&str, Bounds); 2] = [
    (
        "one browser (two tabs), a thief",
        Bounds {
            jars: 1,
            logins: 1,
            refreshes: 3,
            losses: 1,
            thief_refreshes: 1,
            max_time: 2,
        },
    ),
    (
        "two devices",
        Bounds {
            jars: 2,
            logins: 2,
            refreshes: 2,
            losses: 1,
            thief_refreshes: 0,
            max_time: 1,
        },
    ),
];

/// The same worlds further (`SESSION_MODEL_BOUNDS=large`).
const LARGE_WORLDS: [(&str, Bounds); 2] = [
    (
        "one browser (two tabs), a thief",
        Bounds {
            jars: 1,
            logins: 1,
            refreshes: 4,
            losses: 1,
            thief_refreshes: 1,
            max_time: 2,
        },
    ),
    (
        "two devices",
        Bounds {
            jars: 2,
            logins: 2,
            refreshes: 3,
            losses: 1,
            thief_refreshes: 0,
            max_time: 1,
        },
    ),
];

/// A refresh token, compared and hashed by what it is (session, generation, hash).
#[derive(Debug, Clone)]
struct Tok(RefreshToken);

impl Tok {
    fn key(&self) -> (String, u64, [u8; 32]) {
        (self.0.session_id.as_str().to_owned(), self.0.generation, self.0.hash().0)
    }
}
impl PartialEq for Tok {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Tok {}
impl Hash for Tok {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key().hash(h)
    }
}

/// A session item as the table holds it, and whether the thief ever presented one of its
/// tokens (the model's bookkeeping, not the table's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    record: SessionRecord,
    thief_used: bool,
}

impl Hash for Item {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let r = &self.record;
        (
            r.session_id.as_str(),
            r.token_hash.0,
            r.previous_token_hash.as_ref().map(|p| p.0),
            r.generation,
            r.rotated_at,
        )
            .hash(h);
        (r.session_epoch, r.expires_at, r.revoked_at, &r.revoke_reason, self.thief_used).hash(h);
    }
}

/// The user item's standing: its epoch and whether it is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct User {
    epoch: u64,
    disabled: bool,
}

impl User {
    fn record(self) -> UserRecord {
        let mut user = UserRecord::new(USERNAME, USER_ID, "argon2id-hash", vec![]);
        user.session_epoch = self.epoch;
        user.disabled = self.disabled;
        user
    }
}

/// A browser: its cookie, and whether it signed out (or was signed out).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Jar {
    cookie: Option<Tok>,
    out: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Jar(usize),
    Thief,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Answer {
    Tokens(Tok),
    Invalid,
    Reused,
}

/// Where a refresh is: sent, rotated (or answered by grace) and about to read the user,
/// ending its session under a condition, revoking it as reused, or answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Stage {
    Sent,
    Rotated { snapshot: Item, current: Tok },
    Ending { epoch_below: Option<u64>, current: Tok },
    RevokingReused,
    Answered(Answer),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Request {
    /// A login that read the user's epoch and will create its session under it.
    Login { jar: usize, epoch: u64, created: Option<Tok> },
    /// `retry`: sent again after its answer was lost.
    Refresh {
        who: Who,
        presented: Tok,
        first_use: u64,
        retry: bool,
        stage: Stage,
    },
    /// A logout everywhere whose session is revoked; the epoch bump from `epoch` is next.
    Everywhere { epoch: u64 },
}

/// An ending the user or the operator was answered for: every session created under an
/// epoch below `epoch` is over, but `survivor` (the session that changed its password).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ended {
    epoch: u64,
    survivor: Option<usize>,
}

/// What went wrong, flagged at the step it happened; each is a property below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Flags {
    old_token_answered: bool,
    legitimate_refresh_taken_for_reuse: bool,
    legitimate_client_signed_out_of_a_live_session: bool,
    ended_session_refreshed: bool,
    second_successor: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Spent {
    logins: u8,
    refreshes: u8,
    losses: u8,
    thief_refreshes: u8,
    stolen: bool,
    ending: bool,
}

/// Whether it happened at least once on the way here: the `sometimes` properties show the
/// model reaches what the `always` ones are about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Seen {
    grace: bool,
    reuse_detected: bool,
    lost_answer_recovered: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    now: u64,
    user: User,
    sessions: Vec<Item>,
    jars: Vec<Jar>,
    thief: Vec<Tok>,
    requests: Vec<Request>,
    ended: Option<Ended>,
    spent: Spent,
    flags: Flags,
    seen: Seen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Tick,
    Login(usize),
    Refresh(usize),
    Steal(usize),
    ThiefRefresh(usize),
    /// The thief presents a session's id and generation with a secret of its own.
    Forge(usize),
    Step(usize),
    Deliver(usize),
    Lose(usize),
    Logout(usize),
    LogoutEverywhere(usize),
    ChangePassword(usize),
    Reset,
    Disable,
}

struct SessionModel {
    bounds: Bounds,
}

/// The session id and first token of the `n`th session: fixed, so every run of the model
/// is the same.
fn first_token(n: usize) -> RefreshToken {
    let id = URL_SAFE_NO_PAD.encode([n as u8 + 1; 16]);
    RefreshToken::start_from(SessionId::parse(&id).expect("22 base64url characters"), [n as u8 + 1; 32])
}

fn session_index(state: &State, tok: &Tok) -> usize {
    state
        .sessions
        .iter()
        .position(|s| s.record.session_id == tok.0.session_id)
        .expect("every token in the model is of a stored session")
}

/// Whether `tok` would be rotated (or answered by grace) and then accepted by its user, if
/// it reached the server now: the decisions of one refresh, run on the current state.
fn would_refresh(state: &State, tok: &Tok) -> bool {
    let stored = &state.sessions[session_index(state, tok)].record;
    let successor = tok.0.successor(&pepper());
    let rotates = Rotation::of(&tok.0, &successor, state.now, IDLE_TTL).permits(stored)
        || matches!(judge_refused(&tok.0, Some(stored.clone()), &pepper(), state.now, GRACE), Refused::Grace { .. });
    rotates && judge_user(Some(&state.user.record()), stored).is_ok()
}

/// Every token someone holds or has in flight.
fn held(state: &State) -> impl Iterator<Item = &Tok> {
    let cookies = state.jars.iter().filter_map(|j| j.cookie.as_ref());
    let in_flight = state.requests.iter().flat_map(|r| match r {
        Request::Refresh { presented, stage, .. } => {
            let answered = match stage {
                Stage::Rotated { current, .. } | Stage::Ending { current, .. } | Stage::Answered(Answer::Tokens(current)) => Some(current),
                _ => None,
            };
            [Some(presented), answered]
        }
        Request::Login { created, .. } => [created.as_ref(), None],
        Request::Everywhere { .. } => [None, None],
    });
    cookies.chain(state.thief.iter()).chain(in_flight.flatten())
}

impl SessionModel {
    /// A refresh decided to issue `current` for `session`: flag what must never be.
    fn issue(state: &mut State, session: usize, current: &Tok) {
        let mut canonical = first_token(session);
        while canonical.generation < current.0.generation {
            canonical = canonical.successor(&pepper());
        }
        if Tok(canonical) != *current {
            state.flags.second_successor = true;
        }
        let item = &state.sessions[session].record;
        if let Some(ended) = state.ended
            && item.epoch() < ended.epoch
            && ended.survivor != Some(session)
        {
            state.flags.ended_session_refreshed = true;
        }
    }

    /// The next server step of request `i`.
    fn step(&self, state: &mut State, i: usize) {
        let now = state.now;
        match state.requests[i].clone() {
            Request::Login { jar, epoch, created: None } => {
                let n = state.sessions.len();
                let token = first_token(n);
                state.sessions.push(Item {
                    record: SessionRecord {
                        session_id: token.session_id.clone(),
                        user_id: USER_ID.into(),
                        username: USERNAME.into(),
                        token_hash: token.hash(),
                        previous_token_hash: None,
                        generation: 0,
                        rotated_at: now,
                        created_at: now,
                        session_epoch: Some(epoch),
                        expires_at: now + IDLE_TTL,
                        absolute_expires_at: now + MAX_AGE,
                        revoked_at: None,
                        revoke_reason: None,
                        user_agent: None,
                        source_ip: None,
                        auth: Authentication::password(now),
                    },
                    thief_used: false,
                });
                state.requests[i] = Request::Login {
                    jar,
                    epoch,
                    created: Some(Tok(token)),
                };
            }
            Request::Login { .. } => {}
            Request::Everywhere { epoch } => {
                if state.user.epoch == epoch {
                    state.user.epoch = epoch + 1;
                }
                state.ended = Some(Ended {
                    epoch: epoch + 1,
                    survivor: None,
                });
                state.requests.remove(i);
            }
            Request::Refresh {
                who,
                presented,
                first_use,
                retry,
                stage,
            } => {
                let n = session_index(state, &presented);
                let next = match stage {
                    Stage::Sent => {
                        let successor = presented.0.successor(&pepper());
                        let rotation = Rotation::of(&presented.0, &successor, now, IDLE_TTL);
                        let stored = &mut state.sessions[n];
                        if rotation.permits(&stored.record) {
                            rotation.apply(&mut stored.record);
                            Stage::Rotated {
                                snapshot: stored.clone(),
                                current: Tok(successor),
                            }
                        } else {
                            match judge_refused(&presented.0, Some(stored.record.clone()), &pepper(), now, GRACE) {
                                Refused::Grace { current, .. } => {
                                    // Only the immediate predecessor, within the window (or
                                    // at the rotation's own instant), stands for the current.
                                    let behind = stored.record.generation - presented.0.generation;
                                    let since = now - stored.record.rotated_at.min(now);
                                    if behind != 1 || since > GRACE {
                                        state.flags.old_token_answered = true;
                                    }
                                    state.seen.grace = true;
                                    state.seen.lost_answer_recovered |= retry;
                                    Stage::Rotated {
                                        snapshot: stored.clone(),
                                        current: Tok(current),
                                    }
                                }
                                Refused::Reuse(_) => {
                                    if who != Who::Thief && !stored.thief_used {
                                        state.flags.legitimate_refresh_taken_for_reuse = true;
                                    }
                                    Stage::RevokingReused
                                }
                                Refused::Forged(_) => Stage::Answered(Answer::Invalid),
                                Refused::Answer(AuthError::TokenReused) => Stage::Answered(Answer::Reused),
                                Refused::Answer(_) => Stage::Answered(Answer::Invalid),
                            }
                        }
                    }
                    Stage::Rotated { snapshot, current } => match judge_user(Some(&state.user.record()), &snapshot.record) {
                        Ok(_) => {
                            Self::issue(state, n, &current);
                            Stage::Answered(Answer::Tokens(current))
                        }
                        Err(RevokeIf::EpochBelow(epoch)) => Stage::Ending {
                            epoch_below: Some(epoch),
                            current,
                        },
                        Err(_) => Stage::Ending { epoch_below: None, current },
                    },
                    Stage::Ending { epoch_below, current } => {
                        let condition = epoch_below.map_or(RevokeIf::NotRevoked, RevokeIf::EpochBelow);
                        let stored = &mut state.sessions[n].record;
                        if condition.permits(stored, now) {
                            // Ending a session its user still accepts would sign out a client
                            // that nothing ended.
                            if stored.revoked_at.is_none() && state.user.record().accepts(stored) {
                                state.flags.legitimate_client_signed_out_of_a_live_session = true;
                            }
                            stored.revoke("user_invalidated", now);
                            Stage::Answered(Answer::Invalid)
                        } else if stored.is_live(now) && state.user.record().accepts(stored) {
                            Self::issue(state, n, &current);
                            Stage::Answered(Answer::Tokens(current))
                        } else {
                            Stage::Answered(Answer::Invalid)
                        }
                    }
                    Stage::RevokingReused => {
                        let stored = &mut state.sessions[n].record;
                        if RevokeIf::NotRevoked.permits(stored, now) {
                            stored.revoke(REUSE_DETECTED, now);
                            state.seen.reuse_detected = true;
                        }
                        Stage::Answered(Answer::Reused)
                    }
                    Stage::Answered(_) => return,
                };
                state.requests[i] = Request::Refresh {
                    who,
                    presented,
                    first_use,
                    retry,
                    stage: next,
                };
            }
        }
    }

    /// Request `i`'s answer reaches its client.
    fn deliver(state: &mut State, i: usize) {
        match state.requests.remove(i) {
            Request::Login { jar, created: Some(token), .. } => {
                state.jars[jar] = Jar {
                    cookie: Some(token),
                    out: false,
                };
            }
            Request::Refresh {
                who: Who::Thief,
                stage: Stage::Answered(Answer::Tokens(token)),
                ..
            } if !state.thief.contains(&token) => {
                state.thief.push(token);
            }
            Request::Refresh {
                who: Who::Jar(j),
                presented,
                stage: Stage::Answered(answer),
                ..
            } if !state.jars[j].out => match answer {
                Answer::Tokens(token) => state.jars[j].cookie = Some(token),
                Answer::Invalid | Answer::Reused => {
                    // A client that follows the protocol is signed out only when something
                    // ended its session: a revocation, its user's refusal, an expiry.
                    let item = &state.sessions[session_index(state, &presented)].record;
                    if item.revoked_at.is_none() && item.is_live(state.now) && state.user.record().accepts(item) {
                        state.flags.legitimate_client_signed_out_of_a_live_session = true;
                    }
                    state.jars[j] = Jar { cookie: None, out: true };
                }
            },
            _ => {}
        }
    }

    fn end(state: &mut State, ended: Ended) {
        state.ended = Some(ended);
        state.spent.ending = true;
    }
}

impl Model for SessionModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            now: 0,
            user: User { epoch: 0, disabled: false },
            sessions: Vec::new(),
            jars: vec![Jar { cookie: None, out: false }; self.bounds.jars],
            thief: Vec::new(),
            requests: Vec::new(),
            ended: None,
            spent: Spent::default(),
            flags: Flags::default(),
            seen: Seen::default(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        let b = self.bounds;
        // Time passes only while every legitimate request still to reach the server would
        // reach it within the grace window of its token's first use (see the module doc).
        let on_time = state.requests.iter().all(|r| match r {
            Request::Refresh {
                who: Who::Jar(_),
                first_use,
                stage: Stage::Sent,
                ..
            } => state.now + 1 - first_use <= GRACE,
            _ => true,
        });
        if state.now < b.max_time && on_time {
            actions.push(Action::Tick);
        }
        for (j, jar) in state.jars.iter().enumerate() {
            let busy: Vec<&Tok> = state
                .requests
                .iter()
                .filter_map(|r| match r {
                    Request::Refresh {
                        who: Who::Jar(k), presented, ..
                    } if *k == j => Some(presented),
                    _ => None,
                })
                .collect();
            let logging_in = state.requests.iter().any(|r| matches!(r, Request::Login { jar, .. } if *jar == j));
            match &jar.cookie {
                // A new login once the jar's last answers are in (a late one would replace
                // the new cookie with a dead one).
                None if busy.is_empty() && !logging_in && !state.user.disabled && state.spent.logins < b.logins => actions.push(Action::Login(j)),
                // The first jar has two tabs; both send the one cookie.
                Some(cookie) if busy.iter().all(|t| *t == cookie) && busy.len() < if j == 0 { 2 } else { 1 } => {
                    // The other tab sends the cookie too, while within the grace window of its
                    // first use.
                    let in_window = state.requests.iter().all(|r| match r {
                        Request::Refresh {
                            who: Who::Jar(k), first_use, ..
                        } if *k == j => state.now - first_use <= GRACE,
                        _ => true,
                    });
                    if in_window && state.spent.refreshes < b.refreshes {
                        actions.push(Action::Refresh(j));
                    }
                    if !state.spent.stolen && b.thief_refreshes > 0 {
                        actions.push(Action::Steal(j));
                    }
                    if !state.spent.ending {
                        actions.extend([Action::Logout(j), Action::LogoutEverywhere(j), Action::ChangePassword(j)]);
                    }
                }
                _ => {}
            }
        }
        if state.spent.thief_refreshes < b.thief_refreshes {
            actions.extend((0..state.thief.len()).map(Action::ThiefRefresh));
            actions.extend((0..state.sessions.len()).map(Action::Forge));
        }
        if !state.spent.ending {
            actions.extend([Action::Reset, Action::Disable]);
        }
        for (i, request) in state.requests.iter().enumerate() {
            match request {
                Request::Login { created: Some(_), .. } => actions.push(Action::Deliver(i)),
                Request::Refresh {
                    who,
                    first_use,
                    stage: Stage::Answered(_),
                    ..
                } => {
                    actions.push(Action::Deliver(i));
                    // Lost, and sent again while still within the grace window.
                    if *who != Who::Thief && state.now - first_use <= GRACE && state.spent.losses < b.losses {
                        actions.push(Action::Lose(i));
                    }
                }
                _ => actions.push(Action::Step(i)),
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        let now = state.now;
        match action {
            Action::Tick => state.now += 1,
            Action::Login(j) => {
                state.spent.logins += 1;
                state.requests.push(Request::Login {
                    jar: j,
                    epoch: state.user.epoch,
                    created: None,
                });
            }
            Action::Refresh(j) => {
                state.spent.refreshes += 1;
                let presented = state.jars[j].cookie.clone()?;
                // A second tab's request with the same cookie, or a first use.
                let first_use = state
                    .requests
                    .iter()
                    .find_map(|r| match r {
                        Request::Refresh {
                            who: Who::Jar(k),
                            presented: p,
                            first_use,
                            ..
                        } if *k == j && *p == presented => Some(*first_use),
                        _ => None,
                    })
                    .unwrap_or(now);
                state.requests.push(Request::Refresh {
                    who: Who::Jar(j),
                    presented,
                    first_use,
                    retry: false,
                    stage: Stage::Sent,
                });
            }
            Action::Steal(j) => {
                state.spent.stolen = true;
                let cookie = state.jars[j].cookie.clone()?;
                state.thief.push(cookie);
            }
            Action::ThiefRefresh(t) => {
                state.spent.thief_refreshes += 1;
                let presented = state.thief[t].clone();
                let n = session_index(&state, &presented);
                state.sessions[n].thief_used = true;
                state.requests.push(Request::Refresh {
                    who: Who::Thief,
                    presented,
                    first_use: now,
                    retry: false,
                    stage: Stage::Sent,
                });
            }
            Action::Forge(n) => {
                state.spent.thief_refreshes += 1;
                let stored = &state.sessions[n].record;
                let mut forged = RefreshToken::start_from(stored.session_id.clone(), [0xf0; 32]);
                forged.generation = stored.generation;
                state.requests.push(Request::Refresh {
                    who: Who::Thief,
                    presented: Tok(forged),
                    first_use: now,
                    retry: false,
                    stage: Stage::Sent,
                });
            }
            Action::Step(i) => self.step(&mut state, i),
            Action::Deliver(i) => Self::deliver(&mut state, i),
            Action::Lose(i) => {
                // The answer never arrives; the client sends the same request again.
                state.spent.losses += 1;
                if let Request::Refresh { stage, retry, .. } = &mut state.requests[i] {
                    *stage = Stage::Sent;
                    *retry = true;
                }
            }
            Action::Logout(j) => {
                state.spent.ending = true;
                let cookie = state.jars[j].cookie.take()?;
                state.jars[j].out = true;
                let n = session_index(&state, &cookie);
                let stored = &mut state.sessions[n].record;
                if RevokeIf::Holds(&cookie.0.hash()).permits(stored, now) {
                    stored.revoke("logout", now);
                }
            }
            Action::LogoutEverywhere(j) => {
                state.spent.ending = true;
                let cookie = state.jars[j].cookie.take()?;
                state.jars[j].out = true;
                let n = session_index(&state, &cookie);
                let stored = &mut state.sessions[n].record;
                if RevokeIf::Holds(&cookie.0.hash()).permits(stored, now) {
                    stored.revoke("logout_everywhere", now);
                    let epoch = stored.epoch();
                    state.requests.push(Request::Everywhere { epoch });
                }
            }
            Action::ChangePassword(j) => {
                // One transaction over the user and the caller's session (the store's
                // `change_password`): the epoch bumped from the session's, the session moved
                // to the new one, while both still stand.
                let cookie = state.jars[j].cookie.clone()?;
                let n = session_index(&state, &cookie);
                let keep = &mut state.sessions[n].record;
                if state.user.epoch == keep.epoch() && keep.is_live(now) && keep.holds(&cookie.0.hash()) {
                    state.user.epoch += 1;
                    keep.session_epoch = Some(state.user.epoch);
                    let epoch = state.user.epoch;
                    Self::end(&mut state, Ended { epoch, survivor: Some(n) });
                } else {
                    state.spent.ending = true;
                }
            }
            Action::Reset => {
                state.user.epoch += 1;
                let epoch = state.user.epoch;
                Self::end(&mut state, Ended { epoch, survivor: None });
            }
            Action::Disable => {
                state.user.epoch += 1;
                state.user.disabled = true;
                let epoch = state.user.epoch;
                Self::end(&mut state, Ended { epoch, survivor: None });
            }
        }
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("1. after a reuse is detected, no one holds a token that refreshes", |_, s: &State| {
                held(s).all(|t| s.sessions[session_index(s, t)].record.revoke_reason.as_deref() != Some(REUSE_DETECTED) || !would_refresh(s, t))
            }),
            Property::always("2. a legitimate client is signed out only when something ended its session", |_, s: &State| {
                !s.flags.legitimate_client_signed_out_of_a_live_session
            }),
            Property::always("3. once an ending is answered, no session it ended refreshes", |_, s: &State| {
                !s.flags.ended_session_refreshed
            }),
            Property::always("3. once an ending is answered, no session it ended passes the strict check", |_, s: &State| {
                let Some(ended) = s.ended else { return true };
                s.sessions.iter().enumerate().all(|(n, item)| {
                    let ended_it = item.record.epoch() < ended.epoch && ended.survivor != Some(n);
                    let standing = Standing {
                        session: item.record.standing(),
                        user: Some(s.user.record().standing()),
                    };
                    !ended_it || !standing.is_live(s.now)
                })
            }),
            Property::always("4. at most one successor per generation is ever issued", |_, s: &State| {
                !s.flags.second_successor
            }),
            Property::always(
                "4. only the immediate predecessor, within the grace window, is answered for the current token",
                |_, s: &State| !s.flags.old_token_answered,
            ),
            Property::always(
                "5. a legitimate client's refresh (a retry of a lost answer too) is never taken for reuse",
                |_, s: &State| !s.flags.legitimate_refresh_taken_for_reuse,
            ),
            Property::sometimes("reachable: a grace answer", |_, s: &State| s.seen.grace),
            Property::sometimes("reachable: a reuse detected", |_, s: &State| s.seen.reuse_detected),
            Property::sometimes("reachable: a lost answer recovered by its retry", |_, s: &State| s.seen.lost_answer_recovered),
            Property::sometimes("reachable: an ending answered with a session still in flight", |_, s: &State| {
                s.ended.is_some()
                    && s.requests.iter().any(|r| {
                        matches!(
                            r,
                            Request::Refresh {
                                stage: Stage::Rotated { .. },
                                ..
                            }
                        )
                    })
            }),
        ]
    }
}

#[test]
fn the_session_protocol_keeps_its_five_properties_in_every_interleaving_within_the_bounds() {
    let worlds = match std::env::var("SESSION_MODEL_BOUNDS").as_deref() {
        Ok("large") => LARGE_WORLDS,
        _ => WORLDS,
    };
    for (world, bounds) in worlds {
        check(world, bounds);
    }
}

/// Checks every property in `world`: no `always` has a counterexample, and every
/// `sometimes` the world can reach is reached.
fn check(world: &str, bounds: Bounds) {
    let started = Instant::now();
    let model = SessionModel { bounds };
    let properties = model.properties();
    let checker = model.checker().threads(2).spawn_bfs().join();
    println!(
        "{world}, {bounds:?}: {} states ({} unique), depth {}, in {:.1} s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        started.elapsed().as_secs_f64()
    );
    let discoveries = checker.discoveries();
    for property in &properties {
        let found = discoveries.get(property.name);
        match property.expectation {
            stateright::Expectation::Always => {
                assert!(
                    found.is_none(),
                    "{world}: {} fails:\n{}",
                    property.name,
                    found.map(|p| format!("{p}")).unwrap_or_default()
                )
            }
            _ if property.name.contains("reuse") && bounds.thief_refreshes == 0 => {}
            _ => assert!(found.is_some(), "{world}: never reached, so the model would not show it: {}", property.name),
        }
    }
}
