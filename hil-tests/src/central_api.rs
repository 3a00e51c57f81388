//! Requests to central's API as a user: every request carries `Authorization: Bearer TOKEN`
//! (a token from `central token create`). Cheap to clone, so it can go into other threads and
//! network namespaces.

use ureq::RequestBuilder;
use ureq::typestate::{WithBody, WithoutBody};

/// Central's web address and a bearer token to use it with.
#[derive(Debug, Clone)]
pub struct CentralApi {
    /// `http://127.0.0.1:PORT`.
    pub web: String,
    /// The bearer token.
    pub token: String,
}

impl CentralApi {
    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `GET url` with the token.
    pub fn get(&self, url: &str) -> RequestBuilder<WithoutBody> {
        ureq::get(url).header("authorization", self.bearer())
    }

    /// `DELETE url` with the token.
    pub fn delete(&self, url: &str) -> RequestBuilder<WithoutBody> {
        ureq::delete(url).header("authorization", self.bearer())
    }

    /// `POST url` with the token.
    pub fn post(&self, url: &str) -> RequestBuilder<WithBody> {
        ureq::post(url).header("authorization", self.bearer())
    }

    /// `PUT url` with the token.
    pub fn put(&self, url: &str) -> RequestBuilder<WithBody> {
        ureq::put(url).header("authorization", self.bearer())
    }

    /// `PATCH url` with the token.
    pub fn patch(&self, url: &str) -> RequestBuilder<WithBody> {
        ureq::patch(url).header("authorization", self.bearer())
    }

    /// `GET url` with the token: the JSON answer, or an error for a failure status.
    pub fn get_json(&self, url: &str) -> anyhow::Result<serde_json::Value> {
        Ok(self.get(url).call()?.body_mut().read_json()?)
    }

    /// The same user's token for `web` as `token` (e.g. another user's).
    pub fn with_token(&self, token: &str) -> CentralApi {
        CentralApi { web: self.web.clone(), token: token.to_owned() }
    }
}
