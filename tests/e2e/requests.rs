//! Requests to a [`TestApp`]: who calls (`app.as_admin()`, `app.as_key(key)`, `app.anon()`,
//! any of them `.via(&client)` for another client), what (`.get(path)`, `.post(path, &body)`,
//! `.patch`, `.delete`, `.request(method, path)` for the rest) and what must come back:
//! `.expect(201).await` checks the status and answers the JSON body, `.expect_problem(422)`
//! checks an RFC 9457 problem; `.await` alone answers the response, `.status().await` its
//! status. `app.get(path)`, `app.post(..)`, `app.delete(..)` are `app.anon()`'s.
//!
//! ```ignore
//! let created = app.as_admin().post("/system/clients", &json!({"name": "ci"})).expect(201).await;
//! app.as_key(&key).get("/system/clients").expect_problem(403).await;
//! ```

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use reqwest::Method;
use serde_json::Value;

use crate::harness::{ADMIN_KEY, TestApp};

/// A registered API client: its id and its key (shown once, at registration).
pub struct ApiClient {
    pub id: String,
    pub key: String,
}

/// Who a request is from: a client and, perhaps, an `X-API-Key`.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    app: &'a TestApp,
    client: &'a reqwest::Client,
    key: Option<&'a str>,
}

impl TestApp {
    /// Requests without a credential.
    pub fn anon(&self) -> Caller<'_> {
        Caller {
            app: self,
            client: &self.client,
            key: None,
        }
    }

    /// Requests with `key` as `X-API-Key`.
    pub fn as_key<'a>(&'a self, key: &'a str) -> Caller<'a> {
        Caller {
            key: Some(key),
            ..self.anon()
        }
    }

    /// An API client with `roles`, registered by the bootstrap admin (api_clients enabled).
    pub async fn register_client(&self, name: &str, roles: &[&str]) -> ApiClient {
        let body = self
            .as_admin()
            .post(
                "/system/clients",
                &serde_json::json!({"name": name, "roles": roles}),
            )
            .expect(201)
            .await;
        let text = |v: &Value| v.as_str().expect("a string").to_string();
        ApiClient {
            id: text(&body["client"]["id"]),
            key: text(&body["api_key"]),
        }
    }

    /// Requests as the bootstrap admin ([`ADMIN_KEY`]).
    pub fn as_admin(&self) -> Caller<'_> {
        self.as_key(ADMIN_KEY)
    }

    /// `GET path` without a credential (as [`TestApp::anon`]).
    pub fn get(&self, path: &str) -> Call {
        self.anon().get(path)
    }

    /// `DELETE path` without a credential.
    pub fn delete(&self, path: &str) -> Call {
        self.anon().delete(path)
    }

    /// `POST path` with a JSON body, without a credential.
    pub fn post(&self, path: &str, body: &Value) -> Call {
        self.anon().post(path, body)
    }

    /// `POST path` with `body` as it is, labelled `content_type`, without a credential.
    pub fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Call {
        self.anon().post_raw(path, content_type, body)
    }
}

impl<'a> Caller<'a> {
    /// The same caller on another client (e.g. one bound to another local address).
    pub fn via(self, client: &'a reqwest::Client) -> Self {
        Self { client, ..self }
    }

    /// `method path`, no body.
    pub fn request(&self, method: Method, path: &str) -> Call {
        let what = format!("{method} {path}");
        let mut builder = self.client.request(method, self.app.url(path));
        if let Some(key) = self.key {
            builder = builder.header("x-api-key", key);
        }
        Call { builder, what }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn delete(&self, path: &str) -> Call {
        self.request(Method::DELETE, path)
    }

    /// `POST path` with no body (the action endpoints: `…/rotate`, `…/state/normal`).
    pub fn post_empty(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    pub fn post(&self, path: &str, body: &Value) -> Call {
        self.request(Method::POST, path).json(body)
    }

    /// `POST path` with `body` as it is, labelled `content_type`.
    pub fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Call {
        self.request(Method::POST, path)
            .header("content-type", content_type)
            .body(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Call {
        self.request(Method::PATCH, path).json(body)
    }
}

/// A request not sent yet.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call {
    builder: reqwest::RequestBuilder,
    /// `METHOD path`, for the messages
    what: String,
}

impl Call {
    pub fn json(self, body: &Value) -> Self {
        Self {
            builder: self.builder.json(body),
            ..self
        }
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        Self {
            builder: self.builder.header(name, value),
            ..self
        }
    }

    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self {
            builder: self.builder.body(body),
            ..self
        }
    }

    pub fn bearer(self, token: &str) -> Self {
        Self {
            builder: self.builder.bearer_auth(token),
            ..self
        }
    }

    /// Send; answers the response, whatever its status.
    pub async fn send(self) -> reqwest::Response {
        let what = self.what;
        self.builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Send; answers the status.
    pub async fn status(self) -> u16 {
        self.send().await.status().as_u16()
    }

    /// Send, assert `status`, answer the JSON body (`Null` for the empty body of a 204).
    pub async fn expect(self, status: u16) -> Value {
        let what = self.what.clone();
        read_json(self.send().await, status, &what).await
    }

    /// Send, assert an RFC 9457 problem with `status`, answer its body.
    pub async fn expect_problem(self, status: u16) -> Value {
        let what = self.what.clone();
        read_problem(self.send().await, status, &what).await
    }
}

impl IntoFuture for Call {
    type Output = reqwest::Response;
    type IntoFuture = Pin<Box<dyn Future<Output = reqwest::Response> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Read a JSON body, asserting the status.
pub async fn json(resp: reqwest::Response, status: u16) -> Value {
    read_json(resp, status, "request").await
}

/// Assert an RFC 9457 problem with `status`; answers its body.
pub async fn problem(resp: reqwest::Response, status: u16) -> Value {
    read_problem(resp, status, "request").await
}

async fn read_json(resp: reqwest::Response, status: u16, what: &str) -> Value {
    let got = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: body: {e}"));
    assert_eq!(got, status, "{what}: unexpected status; body: {text}");
    if status == 204 {
        assert!(text.is_empty(), "{what}: a 204 with a body: {text}");
        return Value::Null;
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

async fn read_problem(resp: reqwest::Response, status: u16, what: &str) -> Value {
    let got = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, request_id) = (header("content-type"), header("x-request-id"));
    let text = resp
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: body: {e}"));
    assert_eq!(got, status, "{what}: unexpected status; body: {text}");
    assert_eq!(
        content_type, "application/problem+json",
        "{what}: body: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: problem is not JSON ({e}): {text}"));
    assert_eq!(body["status"], status, "{what}: {body}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: {body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{what}: {body}"
    );
    assert!(body["detail"].as_str().is_some(), "{what}: {body}");
    assert!(!request_id.is_empty(), "{what}: no X-Request-ID");
    assert_eq!(body["request_id"], request_id.as_str(), "{what}: {body}");
    body
}
