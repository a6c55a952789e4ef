//! Request bodies: read whole, up to the server's limit (a declared or actual excess is a
//! 413 before the pack is instantiated, after a bounded drain of the rest).

use std::time::Duration;

use axum::body::Body;
use http::header;
use http_body_util::BodyExt;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body could not be read")]
    Unreadable,
}

/// Past the limit, the rest of a body is still read and dropped, up to this much and for up to
/// [`DRAIN_TIME`], before the 413 goes out: a client still sending would otherwise meet a
/// reset connection instead of the answer (a lingering close). A declared length beyond it is
/// answered at once.
const DRAIN_BYTES: u64 = 4 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The body of a request with `headers`, at most `limit` bytes.
pub async fn read(
    body: Body,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        if n <= DRAIN_BYTES {
            drain(body, 0).await;
        }
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else {
            continue; // trailers
        };
        if out.len() + data.len() > limit {
            drain(body, (out.len() + data.len()) as u64).await;
            return Err(BodyError::TooLarge { limit });
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

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let none = http::HeaderMap::new();
        assert_eq!(read(Body::from("abc"), &none, 3).await.unwrap(), "abc");
        assert_eq!(
            read(Body::from("abcd"), &none, 3).await,
            Err(BodyError::TooLarge { limit: 3 })
        );
        let mut declared = http::HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, "99".parse().unwrap());
        assert_eq!(
            read(Body::empty(), &declared, 3).await,
            Err(BodyError::TooLarge { limit: 3 })
        );
    }
}
