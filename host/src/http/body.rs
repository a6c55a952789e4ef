//! Request bodies: read whole, up to the server's limit (a declared or actual excess is a
//! 413 before the pack is instantiated).

use axum::body::Body;
use http::header;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body could not be read")]
    Unreadable,
}

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
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let limited = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limited || e.to_string().contains("length limit") {
            BodyError::TooLarge { limit }
        } else {
            BodyError::Unreadable
        }
    })
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
