//! Request bodies: read whole, up to the server's limit (a declared or actual excess is a
//! 413 before the pack is instantiated, after a bounded drain of the rest), at a minimum
//! pace (a body that trickles is a 400 and its connection is closed).

use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, header};
use http_body_util::BodyExt;
use valhalla_wire::Kind;

use super::problem::Problem;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body could not be read")]
    Unreadable,
}

/// Why a body was not read: its own fault, or a client sending it too slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("the request body arrived slower than {rate} bytes/s")]
    TooSlow { rate: u64 },
}

/// A trickling body is a 400 whose connection is closed (the client is not waited on again).
impl From<ReadError> for Problem {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Body(e) => Problem::from(e),
            ReadError::TooSlow { .. } => Problem::new(Kind::BadRequest, e.to_string())
                .with_header(header::CONNECTION, HeaderValue::from_static("close")),
        }
    }
}

/// How fast a body must arrive: all of it within `grace`, or on average `min_rate` bytes a
/// second after it (`server.body_timeout_ms`, `server.body_min_bytes_per_second`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub grace: Duration,
    pub min_rate: u64,
}

impl Pace {
    pub fn of(config: &crate::config::ServerConfig) -> Self {
        Self {
            grace: Duration::from_millis(config.body_timeout_ms),
            min_rate: config.body_min_bytes_per_second.max(1),
        }
    }

    /// How long after its start a body may take to deliver more than `received` bytes.
    fn allowed(&self, received: usize) -> Duration {
        self.grace + Duration::from_secs_f64(received as f64 / self.min_rate as f64)
    }
}

/// Past the limit, the rest of a body is still read and dropped, up to this much and for up to
/// [`DRAIN_TIME`], before the 413 goes out: a client still sending would otherwise meet a
/// reset connection instead of the answer (a lingering close). A declared length beyond it is
/// answered at once.
const DRAIN_BYTES: u64 = 4 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The body of a request with `headers`, at most `limit` bytes, arriving at `pace`.
pub async fn read(
    body: Body,
    headers: &http::HeaderMap,
    limit: usize,
    pace: Pace,
) -> Result<bytes::Bytes, ReadError> {
    let started = tokio::time::Instant::now();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        if n <= DRAIN_BYTES {
            drain(body, 0).await;
        }
        return Err(BodyError::TooLarge { limit }.into());
    }
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    loop {
        let due = started + pace.allowed(out.len());
        let Ok(frame) = tokio::time::timeout_at(due, body.frame()).await else {
            return Err(ReadError::TooSlow {
                rate: pace.min_rate,
            });
        };
        let Some(frame) = frame else { break };
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else {
            continue; // trailers
        };
        if out.len() + data.len() > limit {
            drain(body, (out.len() + data.len()) as u64).await;
            return Err(BodyError::TooLarge { limit }.into());
        }
        out.extend_from_slice(&data);
    }
    Ok(out.freeze())
}

/// Read and drop what is left of `body` (`seen` bytes read so far), within the drain's bounds.
async fn drain(mut body: Body, mut seen: u64) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen <= DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => break,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        grace: Duration::from_secs(5),
        min_rate: 1024,
    };

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let none = http::HeaderMap::new();
        assert_eq!(
            read(Body::from("abc"), &none, 3, PACE).await.unwrap(),
            "abc"
        );
        assert_eq!(
            read(Body::from("abcd"), &none, 3, PACE).await,
            Err(BodyError::TooLarge { limit: 3 }.into())
        );
        let mut declared = http::HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, "99".parse().unwrap());
        assert_eq!(
            read(Body::empty(), &declared, 3, PACE).await,
            Err(BodyError::TooLarge { limit: 3 }.into())
        );
    }

    struct Chunks(tokio::sync::mpsc::Receiver<bytes::Bytes>);

    impl futures_core::Stream for Chunks {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            self.0.poll_recv(cx).map(|c| c.map(Ok))
        }
    }

    /// A body of `chunks` pieces of `size` bytes, one every `every`.
    fn trickle(chunks: usize, size: usize, every: Duration) -> Body {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            for _ in 0..chunks {
                tokio::time::sleep(every).await;
                if tx.send(bytes::Bytes::from(vec![b'x'; size])).await.is_err() {
                    return;
                }
            }
        });
        Body::from_stream(Chunks(rx))
    }

    #[tokio::test]
    async fn a_body_slower_than_the_minimum_rate_is_refused() {
        let none = http::HeaderMap::new();
        let pace = Pace {
            grace: Duration::from_millis(200),
            min_rate: 100,
        };
        // 10 bytes every 50 ms: 200 B/s, faster than the minimum
        let ok = read(
            trickle(10, 10, Duration::from_millis(50)),
            &none,
            1000,
            pace,
        )
        .await;
        assert_eq!(ok.unwrap().len(), 100);
        // 1 byte every 100 ms: 10 B/s, refused once the grace and the bytes' allowance pass
        let started = std::time::Instant::now();
        let slow = read(
            trickle(50, 1, Duration::from_millis(100)),
            &none,
            1000,
            pace,
        )
        .await;
        assert_eq!(slow, Err(ReadError::TooSlow { rate: 100 }));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
