//! A webhook receiver for the notifications tests: a real HTTP listener on 127.0.0.1, port 0,
//! that records every request (headers, body, when) and answers from a script — a status
//! (with headers), or holding the request open without ever answering. Deliveries are checked
//! with the independent `standardwebhooks` crate, never with the code that signed them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// a status with headers (`Retry-After` …)
    With(u16, Vec<(&'static str, String)>),
    /// never answer (the sender times out, or dies meanwhile)
    Hold,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Delivery {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Verified with `secret` by the `standardwebhooks` crate.
    pub fn verify(&self, secret: &str) -> Result<(), String> {
        let hook = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
        hook.verify(&self.body, &self.headers)
            .map_err(|e| e.to_string())
    }

    /// The same delivery carrying only its `index`th signature.
    pub fn with_signature(&self, index: usize) -> Delivery {
        let one = self
            .header("webhook-signature")
            .split(' ')
            .nth(index)
            .unwrap_or("")
            .to_string();
        let mut copy = self.clone();
        copy.headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&one).expect("header"),
        );
        copy
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    default: Option<Reply>,
    received: Vec<Delivery>,
}

pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Listening, answering `replies` in order and `default` after them.
    pub async fn start(replies: Vec<Reply>, default: Reply) -> Self {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            default: Some(default),
            received: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&script));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hooks/in"),
            script,
            task,
        }
    }

    /// From now on, answer `reply` when the script is done.
    pub fn answer_by_default(&self, reply: Reply) {
        self.script.lock().expect("script").default = Some(reply);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.script.lock().expect("script").received.clone()
    }

    /// Wait (at most `limit`) until `n` requests came; answers them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        let until = Instant::now() + limit;
        loop {
            let got = self.deliveries();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < until,
                "{} of {n} deliveries came within {limit:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut s = script.lock().expect("script");
        s.received.push(Delivery {
            headers,
            body,
            at: Instant::now(),
        });
        let next = s.replies.pop_front();
        next.or_else(|| s.default.clone())
            .unwrap_or(Reply::Status(200))
    };
    let (status, headers) = match reply {
        Reply::Status(status) => (status, Vec::new()),
        Reply::With(status, headers) => (status, headers),
        Reply::Hold => std::future::pending().await,
    };
    let mut response = StatusCode::from_u16(status)
        .expect("a status")
        .into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).expect("header"));
    }
    response
}
