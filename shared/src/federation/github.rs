//! Who signed in at GitHub. GitHub speaks OAuth 2.0 without OpenID Connect: no ID token
//! says who the user is, so the access token the code gave is used, once, on its REST API:
//! `GET /user` for the user's id (the subject: a number that never changes, unlike the
//! login name) and `GET /user/emails` for the addresses (the primary one, with GitHub's own
//! word on whether it is verified). The access token is not kept.

use serde::Deserialize;

use super::client::ProviderError;
use super::http::ProviderHttp;
use super::id_token::IdClaims;

/// The REST API version the answers below are read as.
const API_VERSION: &str = "2022-11-28";

#[derive(Deserialize)]
struct User {
    id: u64,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

/// The user the access token belongs to: the subject is GitHub's numeric user id; the
/// address is the primary one (read only when `read_emails`: the `user:email` scope was
/// asked for), verified when GitHub says so.
pub async fn user(http: &ProviderHttp, api_url: &str, access_token: &str, read_emails: bool) -> Result<IdClaims, ProviderError> {
    let api_url = api_url.trim_end_matches('/');
    let user: User = get(http, &format!("{api_url}/user"), access_token).await?;
    let primary = match read_emails {
        true => get::<Vec<Email>>(http, &format!("{api_url}/user/emails"), access_token)
            .await?
            .into_iter()
            .find(|e| e.primary),
        false => None,
    };
    let email = primary.as_ref().map(|e| e.email.trim().to_lowercase()).filter(|e| !e.is_empty());
    Ok(IdClaims {
        sub: user.id.to_string(),
        email_verified: email.is_some() && primary.is_some_and(|e| e.verified),
        email,
        amr: Vec::new(),
    })
}

async fn get<T: for<'de> Deserialize<'de>>(http: &ProviderHttp, url: &str, access_token: &str) -> Result<T, ProviderError> {
    let request = http::Request::get(url)
        .header(http::header::ACCEPT, "application/vnd.github+json")
        .header(http::header::AUTHORIZATION, format!("Bearer {access_token}"))
        .header("x-github-api-version", API_VERSION)
        .body(Vec::new())
        .map_err(|e| ProviderError::Unavailable(format!("{url}: {e}")))?;
    let response = http.send(request).await?;
    if !response.status().is_success() {
        return Err(ProviderError::Unavailable(format!("{url}: answered {}", response.status())));
    }
    serde_json::from_slice(response.body()).map_err(|e| ProviderError::Unavailable(format!("{url}: not GitHub's answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_are_read_as_github_documents_them() {
        let user: User = serde_json::from_str(r#"{"login":"octocat","id":583231,"email":null,"type":"User"}"#).unwrap();
        assert_eq!(user.id, 583231);
        let emails: Vec<Email> = serde_json::from_str(
            r#"[{"email":"octocat@github.com","verified":true,"primary":true,"visibility":"public"},
               {"email":"1+octocat@users.noreply.github.com","verified":true,"primary":false,"visibility":null}]"#,
        )
        .unwrap();
        assert_eq!(emails.iter().filter(|e| e.primary).count(), 1);
        assert!(serde_json::from_str::<User>(r#"{"login":"octocat"}"#).is_err(), "no id, no user");
    }
}
