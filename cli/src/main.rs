//! `authctl`: the operator's tool. Creates the tables and key set for local development,
//! manages users, sessions and the signing keys. Talks to the emulator or to AWS through the standard AWS
//! environment (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials).

mod keys;
mod mail;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use auth_core::AuthError;
use auth_core::aws::load_sdk_config;
use auth_core::clock::{Clock, SystemClock};
use auth_core::keys::KeyAlgorithm;
use auth_core::keys::secrets_manager::KeyStores;
use auth_core::password::{MAX_PASSWORD_BYTES, hash_password};
use auth_core::password_policy::PasswordPolicy;
use auth_core::store::dynamodb::{DynamoSessions, DynamoUsers, create_tables};
use auth_core::store::{FactorStore, IdentityStore, RevokeIf, SessionStore, UserRecord, UserStore, normalize_username};
use auth_core::tokens::SessionId;
use clap::{Parser, Subcommand};
use secrecy::SecretString;

#[derive(Parser)]
#[command(name = "authctl", about = "Operate the JWT authentication service: local setup, users, sessions.")]
struct Cli {
    /// Users table.
    #[arg(long, env = "USERS_TABLE", default_value = "auth-users", global = true)]
    users_table: String,
    /// Sessions table.
    #[arg(long, env = "SESSIONS_TABLE", default_value = "auth-sessions", global = true)]
    sessions_table: String,
    /// Secrets Manager id of the private key set.
    #[arg(long, env = "SIGNING_SECRET_ID", default_value = "auth/signing-keys", global = true)]
    signing_secret_id: String,
    /// Secrets Manager id of the public JWKS.
    #[arg(long, env = "PUBLIC_KEYS_SECRET_ID", default_value = "auth/public-keys", global = true)]
    public_keys_secret_id: String,
    /// Fewest characters of a new password (as the functions' PASSWORD_MIN_LENGTH).
    #[arg(long, env = "PASSWORD_MIN_LENGTH", default_value_t = 12, global = true)]
    password_min_length: usize,
    /// Lowest zxcvbn score, 0-4, of a new password (as the functions' PASSWORD_MIN_SCORE).
    #[arg(long, env = "PASSWORD_MIN_SCORE", default_value_t = 3, global = true)]
    password_min_score: u8,
    /// The issuer and audience: words a password must not lean on (optional here).
    #[arg(long, env = "AUTH_ISSUER", default_value = "", global = true, hide_default_value = true)]
    issuer: String,
    #[arg(long, env = "AUTH_AUDIENCE", default_value = "", global = true, hide_default_value = true)]
    audience: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the tables (TTL, by_user index), the two key secrets and a demo user where
    /// missing. Safe to run again: it changes nothing that exists.
    LocalSetup {
        /// Username of the demo user.
        #[arg(long, env = "DEMO_USERNAME", default_value = "demo@example.com")]
        demo_username: String,
        /// Password of the demo user (local development only).
        #[arg(long, env = "DEMO_PASSWORD", default_value = "demo-password-change-me", hide_env_values = true)]
        demo_password: String,
        /// The sender the register function mails from, verified in the emulator's SES
        /// (which refuses unverified senders).
        #[arg(long, env = "EMAIL_FROM")]
        email_from: Option<String>,
    },
    /// Read the local mailbox: the messages the emulator kept instead of sending.
    Mail {
        #[command(subcommand)]
        command: mail::MailCommand,
    },
    /// Manage the signing keys: init, staged rotation, the public JWKS.
    Keys(keys::KeysArgs),
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Inspect and revoke sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from stdin, or prompted for on a terminal; never
    /// from the command line, where it would land in shell history and `ps`.
    Add {
        /// The user's e-mail (stored trimmed and lowercased).
        username: String,
        /// A role to put into the user's tokens; repeat for several.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Set a user's password (read as for `add`); every session of the user ends at its
    /// next refresh.
    Passwd { username: String },
    /// Replace a user's roles; tokens carry them from each session's next refresh on.
    Roles {
        username: String,
        /// The roles, comma-separated (empty: none).
        #[arg(long, value_delimiter = ',', num_args = 0.., required = true)]
        set: Vec<String>,
    },
    /// Show a user: id, roles, state, the times sessions are measured against, second
    /// factors and identities at other providers (never the hash).
    Show { username: String },
    /// Disable a user: no login, and refresh fails for every session.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
    /// A user's second factors.
    Mfa {
        #[command(subcommand)]
        command: MfaCommand,
    },
}

#[derive(Subcommand)]
enum MfaCommand {
    /// Remove a user's TOTP and recovery codes (a lost device with no code left), and end
    /// every session of the user: the next login asks for the password only.
    Reset { username: String },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// List a user's sessions.
    List { username: String },
    /// Revoke one session, or every session of a user.
    Revoke {
        /// The session id. Base64url, so it may start with '-': taken as a value, never a flag.
        #[arg(required_unless_present = "user", conflicts_with = "user", allow_hyphen_values = true)]
        session_id: Option<String>,
        /// Revoke every session of this user instead.
        #[arg(long)]
        user: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("authctl: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let sdk = load_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let users = DynamoUsers::new(dynamodb.clone(), &cli.users_table, &cli.sessions_table);
    let sessions = DynamoSessions::new(dynamodb.clone(), &cli.sessions_table);
    let now = SystemClock.now();
    let service_words = [cli.issuer.as_str(), cli.audience.as_str()]
        .into_iter()
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let policy = PasswordPolicy::new(cli.password_min_length, cli.password_min_score, service_words);
    let key_stores = KeyStores::new(aws_sdk_secretsmanager::Client::new(&sdk), &cli.signing_secret_id, &cli.public_keys_secret_id);
    match cli.command {
        Command::Mail { command } => mail::run(command).await?,
        Command::LocalSetup {
            demo_username,
            demo_password,
            email_from,
        } => {
            let mut changes = create_tables(&dynamodb, &cli.users_table, &cli.sessions_table).await.map_err(describe)?;
            if let Some(from) = email_from {
                let ses = aws_sdk_sesv2::Client::new(&sdk);
                let known = ses.get_email_identity().email_identity(&from).send().await.is_ok();
                if !known {
                    ses.create_email_identity()
                        .email_identity(&from)
                        .send()
                        .await
                        .map_err(|e| format!("verifying {from} in SES: {e}"))?;
                    changes.push(format!("verified the sender {from} (in the emulator's SES)"));
                }
            }
            if let Some(change) = keys::init(&key_stores, KeyAlgorithm::Es256, now).await? {
                changes.push(change);
            }
            let password = SecretString::from(demo_password);
            if add_user(&users, &demo_username, &password, vec!["user".into()]).await? {
                changes.push(format!("created user {}", normalize_username(&demo_username)));
            }
            if changes.is_empty() {
                println!("local setup: nothing to do, tables, secret and demo user already exist");
            }
            for change in changes {
                println!("local setup: {change}");
            }
        }
        Command::Keys(args) => keys::run(&key_stores, args, now).await?,
        Command::User {
            command: UserCommand::Add { username, roles },
        } => {
            let password = read_password(&policy, &username)?;
            if !add_user(&users, &username, &password, roles).await? {
                return Err(format!("user {} already exists", normalize_username(&username)));
            }
            println!("added user {}", normalize_username(&username));
        }
        Command::User {
            command: UserCommand::Passwd { username },
        } => {
            let username = find_user(&users, &username).await?.username;
            let password = read_password(&policy, &username)?;
            let hash = hash_password(&password).map_err(describe)?;
            // The write bumps the session epoch: a login that read the old hash meanwhile is
            // ended too, whenever it finishes.
            if !users.set_password(&username, &hash, SystemClock.now()).await.map_err(describe)? {
                return Err(format!("no user {username}"));
            }
            println!("password of {username} changed; every session of the user ends at its next use");
        }
        Command::User {
            command: UserCommand::Roles { username, set },
        } => {
            let username = normalize_username(&username);
            let roles: Vec<String> = set.iter().map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).collect();
            if !users.set_roles(&username, &roles).await.map_err(describe)? {
                return Err(format!("no user {username}"));
            }
            println!(
                "roles of {username}: [{}]; tokens carry them from each session's next refresh (access tokens already issued keep the old roles until they expire)",
                roles.join(", ")
            );
        }
        Command::User {
            command: UserCommand::Show { username },
        } => {
            let user = find_user(&users, &username).await?;
            println!("username              {}", user.username);
            println!("user id               {}", user.user_id);
            println!("roles                 [{}]", user.roles.join(", "));
            println!("disabled              {}", user.disabled);
            println!("password changed at   {}", timestamp(user.password_changed_at));
            println!("session epoch         {} (sessions created under an older one are ended)", user.session_epoch);
            let factors = users.factors(&user.username).await.map_err(describe)?.unwrap_or_default();
            match (factors.totp.is_some(), factors.passkeys.len()) {
                (false, 0) => println!("second factor         none"),
                (true, keys) => println!(
                    "second factor         totp, {} recovery codes left; {keys} passkeys",
                    factors.recovery_codes.len()
                ),
                (false, keys) => println!("second factor         {keys} passkeys"),
            }
            let identities = users.identities_of(&user.username).await.map_err(describe)?;
            if identities.is_empty() {
                println!("identities            none");
            }
            for identity in identities {
                println!(
                    "identity              {} ({}), subject {}, {}, linked {}",
                    identity.provider,
                    identity.issuer,
                    identity.subject,
                    identity.email.as_deref().unwrap_or("no address"),
                    timestamp(identity.created_at)
                );
            }
        }
        Command::User {
            command: UserCommand::Mfa {
                command: MfaCommand::Reset { username },
            },
        } => {
            // Whoever holds the lost device may hold a session too: end them all first, so no
            // session can add a factor of its own once the user has none.
            let user = end_every_session(&users, &username).await?;
            let factors = users.factors(&user.username).await.map_err(describe)?.unwrap_or_default();
            for passkey in &factors.passkeys {
                if !users.remove_passkey(&user.username, &passkey.id).await.map_err(describe)? {
                    eprintln!("passkey {} had no owner pointer of {}; its factor is removed anyway", passkey.id, user.username);
                }
            }
            users.remove_factors(&user.username).await.map_err(describe)?;
            println!(
                "every session of {} ended and its second factors removed; the next login asks for the password only",
                user.username
            );
        }
        Command::User {
            command: UserCommand::Disable { username },
        } => set_disabled(&users, &username, true).await?,
        Command::User {
            command: UserCommand::Enable { username },
        } => set_disabled(&users, &username, false).await?,
        Command::Sessions {
            command: SessionsCommand::List { username },
        } => {
            let user = find_user(&users, &username).await?;
            println!(
                "{:<24} {:<20} {:<20} {:<20} {:<22} {:<16} user agent",
                "session", "created", "last used", "expires", "state", "source ip"
            );
            for id in sessions.list_for_user(&user.user_id, usize::MAX).await.map_err(describe)? {
                let Some(s) = sessions.get(&id).await.map_err(describe)? else { continue };
                let state = match (&s.revoke_reason, s.is_live(now)) {
                    (Some(reason), _) => format!("revoked ({reason})"),
                    (None, true) => "live".into(),
                    (None, false) => "expired".into(),
                };
                println!(
                    "{:<24} {:<20} {:<20} {:<20} {:<22} {:<16} {}",
                    s.session_id,
                    timestamp(s.created_at),
                    timestamp(s.rotated_at),
                    timestamp(s.expires_at.min(s.absolute_expires_at)),
                    state,
                    s.source_ip.unwrap_or_default(),
                    s.user_agent.unwrap_or_default()
                );
            }
        }
        Command::Sessions {
            command: SessionsCommand::Revoke { session_id, user },
        } => {
            let ids = match (session_id, user) {
                (Some(id), _) => vec![SessionId::parse(&id).ok_or_else(|| format!("{id:?} is not a session id"))?],
                (None, Some(username)) => {
                    // The epoch first: every session of the user is dead, including any
                    // created while the items below are revoked one by one. Another bump
                    // landing in between refuses this one: read the user again and retry.
                    let user = end_every_session(&users, &username).await?;
                    sessions.list_for_user(&user.user_id, usize::MAX).await.map_err(describe)?
                }
                (None, None) => return Err("name a session id or --user".into()),
            };
            let mut revoked = 0;
            for id in &ids {
                if sessions
                    .revoke(id, RevokeIf::NotRevoked, "admin", now)
                    .await
                    .map_err(describe)?
                    .revoked()
                    .is_some()
                {
                    revoked += 1;
                }
            }
            println!("revoked {revoked} session(s); {} already ended or unknown", ids.len() - revoked);
        }
    }
    Ok(())
}

fn describe(e: AuthError) -> String {
    match e {
        AuthError::Unavailable(cause) => cause,
        other => other.to_string(),
    }
}

async fn add_user(users: &DynamoUsers, username: &str, password: &SecretString, roles: Vec<String>) -> Result<bool, String> {
    let username = normalize_username(username);
    if username.is_empty() || username.len() > 256 {
        return Err("the username must be 1 to 256 bytes".into());
    }
    // The users table also holds `throttle#<username>` counters (which login may update):
    // a username with `#` could collide with one of them.
    if username.contains('#') {
        return Err("the username must not contain '#'".into());
    }
    if users.get(&username).await.map_err(describe)?.is_some() {
        return Ok(false);
    }
    let password_hash = hash_password(password).map_err(describe)?;
    let user = UserRecord::new(username, uuid_v4(), password_hash, roles);
    users.create(&user).await.map_err(describe)
}

fn uuid_v4() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn find_user(users: &DynamoUsers, username: &str) -> Result<UserRecord, String> {
    let username = normalize_username(username);
    users.get(&username).await.map_err(describe)?.ok_or_else(|| format!("no user {username}"))
}

/// Bumps the user's session epoch, which ends every session (each at its next use): from the
/// epoch just read, so a bump landing in between refuses this one and it reads and tries
/// again. The user as read before the bump that landed.
async fn end_every_session(users: &DynamoUsers, username: &str) -> Result<UserRecord, String> {
    for _ in 0..5 {
        let user = find_user(users, username).await?;
        if users.bump_session_epoch(&user.username, user.session_epoch).await.map_err(describe)? {
            return Ok(user);
        }
    }
    Err(format!("the session epoch of {} keeps changing; try again", normalize_username(username)))
}

async fn set_disabled(users: &DynamoUsers, username: &str, disabled: bool) -> Result<(), String> {
    let username = normalize_username(username);
    if !users.set_disabled(&username, disabled).await.map_err(describe)? {
        return Err(format!("no user {username}"));
    }
    println!("{} user {username}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

/// The new password of `username`: prompted twice on a terminal, else the first line of
/// stdin; refused unless `policy` accepts it, and returned in the form that is hashed.
fn read_password(policy: &PasswordPolicy, username: &str) -> Result<SecretString, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Repeat password: ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut input = String::new();
        std::io::stdin()
            .take(MAX_PASSWORD_BYTES as u64 + 2)
            .read_to_string(&mut input)
            .map_err(|e| e.to_string())?;
        input.lines().next().unwrap_or_default().to_owned()
    };
    policy
        .check(&SecretString::from(password), &normalize_username(username))
        .map_err(|weak| weak.0)
}

/// Epoch seconds as `YYYY-MM-DD HH:MM:SSZ` (UTC), without a date crate.
pub(crate) fn timestamp(epoch: u64) -> String {
    let (days, secs) = (epoch / 86_400, epoch % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(timestamp(1_764_547_200 + 3_725), "2025-12-01 01:02:05Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn a_session_id_starting_with_a_hyphen_is_a_value_not_a_flag() {
        let cli = Cli::try_parse_from(["authctl", "sessions", "revoke", "-x4uMmWq3gHkRk2Zy9y1Ag"]).expect("parses");
        let Command::Sessions {
            command: SessionsCommand::Revoke { session_id, user },
        } = cli.command
        else {
            panic!("not a revoke");
        };
        assert_eq!((session_id.as_deref(), user), (Some("-x4uMmWq3gHkRk2Zy9y1Ag"), None));
    }

    #[test]
    fn revoking_every_session_of_a_user_still_reads_the_user_flag() {
        let cli = Cli::try_parse_from(["authctl", "sessions", "revoke", "--user", "bob@example.com"]).expect("parses");
        let Command::Sessions {
            command: SessionsCommand::Revoke { session_id, user },
        } = cli.command
        else {
            panic!("not a revoke");
        };
        assert_eq!((session_id, user.as_deref()), (None, Some("bob@example.com")));
    }
}
