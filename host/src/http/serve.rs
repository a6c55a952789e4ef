//! The listener's loop: each accepted connection is served by hyper (HTTP/1.1, or HTTP/2 by
//! prior knowledge) with the router, the peer's address as `ConnectInfo`, and three limits:
//!
//! - **Open connections** are capped (`server.max_connections`). One past the cap is still
//!   accepted and answered, by a tiny service that never reaches a pack or the database:
//!   `GET /system/health/live` gets its 200, anything else a 503 problem+json with
//!   `Retry-After: 1` and `Connection: close`, and the socket is closed. Pausing accept
//!   instead would leave clients hanging in the kernel's backlog with no answer, and a
//!   liveness probe failing there would restart a server that is only busy. Refusals in
//!   progress are capped too ([`REFUSING`]); past them a connection is closed unanswered.
//! - **Request heads** must arrive within `server.header_read_timeout_ms`: from the accept for
//!   the first request (this loop's timer, which also covers the bytes hyper reads to tell
//!   HTTP/1 from HTTP/2), then hyper's own header timer for each later request on the
//!   connection (it starts when the connection goes idle, so it is an idle timeout too).
//!   A slow client's connection is closed.
//! - **Graceful shutdown**: when `shutdown` resolves, the listener is dropped (new connections
//!   are refused by the kernel), idle connections close and in-flight requests finish; this
//!   returns when every connection is gone. (The caller bounds that by its grace period.)

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use valhalla_wire::Kind;

use super::problem::Problem;

/// Connections being refused at once (each holds a socket for at most [`REFUSAL_TIME`]).
const REFUSING: usize = 256;
/// How long a refused connection may take to send its request head and read the answer.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// The connection limits (`[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

impl Limits {
    pub fn of(config: &crate::config::ServerConfig) -> Self {
        Self {
            max_connections: config.max_connections,
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        }
    }
}

/// Serve `router` on `listener` until `shutdown`, then drain (see the module's doc).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // CONNECT protocol, for HTTP/2 websockets (as axum::serve)
    builder.http2().enable_connect_protocol();
    let builder = Arc::new(builder);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    // connections hold a receiver each: shutdown is signalled by dropping the sender, and
    // is over when every receiver is gone
    let (signal, _) = watch::channel(());
    let (closed_tx, closed_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        match Arc::clone(&open).try_acquire_owned() {
            Ok(place) => {
                let conn = Connection {
                    builder: Arc::clone(&builder),
                    router: router.clone(),
                    peer,
                    head_deadline: limits.header_read_timeout,
                };
                let (stop, closed) = (signal.subscribe(), closed_rx.clone());
                tokio::spawn(async move {
                    conn.serve(stream, stop).await;
                    drop((place, closed));
                });
            }
            Err(_) => match Arc::clone(&refusing).try_acquire_owned() {
                Ok(place) => {
                    let max = limits.max_connections;
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REFUSAL_TIME, refuse(stream, max)).await;
                        drop(place);
                    });
                }
                Err(_) => drop(stream),
            },
        }
    }
    drop(listener);
    drop(signal);
    drop(closed_rx);
    closed_tx.closed().await;
}

/// One accepted connection within the cap.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: Router,
    peer: SocketAddr,
    head_deadline: Duration,
}

impl Connection {
    async fn serve(self, stream: TcpStream, mut stop: watch::Receiver<()>) {
        let (router, peer) = (self.router, self.peer);
        let first_head = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&first_head);
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            seen.store(true, Ordering::Relaxed);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        let mut conn = std::pin::pin!(conn);
        let head = tokio::time::sleep(self.head_deadline);
        let mut head = std::pin::pin!(head);
        let (mut head_armed, mut stopping) = (true, false);
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::trace!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                _ = &mut head, if head_armed => {
                    if first_head.load(Ordering::Relaxed) {
                        head_armed = false;
                    } else {
                        tracing::debug!(peer = %peer, "no request head within the deadline: closing");
                        break;
                    }
                }
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Answer a connection past the cap (see the module's doc) and close it.
async fn refuse(stream: TcpStream, max: usize) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_TIME)
        .keep_alive(false);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| async move {
        Ok::<_, Infallible>(refusal(&request, max))
    });
    let _ = http1.serve_connection(TokioIo::new(stream), service).await;
}

/// The answer to a request on a connection past the cap.
fn refusal<B>(request: &Request<B>, max: usize) -> Response<Body> {
    let path = request.uri().path();
    let probe = matches!(*request.method(), http::Method::GET | http::Method::HEAD)
        && matches!(path, "/system/health/live" | "/system-health/live");
    let mut response = if probe {
        let mut ok = Response::new(Body::from(r#"{"status":"ok"}"#));
        ok.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        ok
    } else {
        let id = uuid::Uuid::now_v7().to_string();
        let problem = Problem::new(
            Kind::Overloaded,
            format!("the server is serving its limit of {max} connections; try again"),
        );
        let body = problem.at(path, &id).to_json();
        let mut refused = Response::new(Body::from(body));
        *refused.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = refused.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        if let Ok(id) = HeaderValue::from_str(&id) {
            headers.insert(super::request_id::HEADER, id);
        }
        refused
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// An accept that failed: a connection reset before it was taken is nothing; anything else
/// (out of file descriptors, say) is logged and accepting pauses a second, as hyper and
/// axum do.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_live_answers_and_the_rest_is_refused() {
        let get = |path: &str| Request::get(path).body(()).unwrap();
        let live = refusal(&get("/system/health/live"), 8);
        assert_eq!(live.status(), StatusCode::OK);
        assert_eq!(live.headers()[header::CONNECTION], "close");
        let refused = refusal(&get("/system/config"), 8);
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            refused.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let post = Request::post("/system/health/live").body(()).unwrap();
        assert_eq!(refusal(&post, 8).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
