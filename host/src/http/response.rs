//! A pack's (or a guard's) WIT response as an HTTP response: the status checked, the headers
//! the host owns (framing, connection, the request id) dropped, the body left out for HEAD.
//! A route of a pack granted `artefacts` may answer one of its artefact files as the body
//! ([`ARTEFACT_HEADER`]): the host streams it from disk, whatever its size.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderName, HeaderValue, StatusCode, header};
use tokio::io::AsyncReadExt;
use valhalla_wire::Kind;

use super::problem::Problem;
use crate::capabilities::artefacts::{ArtefactError, Artefacts};
use crate::runtime::bindings as wit;

/// The response header by which a route names the artefact to send as its body (never sent
/// to the client; honoured only from a pack granted `artefacts`).
pub const ARTEFACT_HEADER: &str = "x-valhalla-artefact";

/// Headers a pack may not set: the host owns framing and connection handling.
fn forbidden_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "x-request-id"
            | ARTEFACT_HEADER
    )
}

/// `response` from `pack`, as sent to the client.
pub fn into_http(response: wit::Response, is_head: bool, pack: &str) -> Result<Response, Problem> {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        tracing::error!(
            pack,
            status = response.status,
            "pack answered an invalid status"
        );
        return Err(Problem::invalid_response(pack));
    };
    let body = if is_head {
        Body::empty()
    } else {
        Body::from(response.body)
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    let headers = out.headers_mut();
    for (name, value) in response.headers {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) if !forbidden_header(&n) => {
                headers.append(n, v);
            }
            _ => tracing::warn!(pack, header = %name, "pack header dropped"),
        }
    }
    Ok(out)
}

/// A route's `response` from `pack`, as sent: [`into_http`], except that when it names an
/// artefact in [`ARTEFACT_HEADER`] and the pack is granted `artefacts`, the body is that file,
/// streamed with its length, under the status and the other headers (content type,
/// disposition) the pack gave. From an ungranted pack the header is dropped and the body is
/// the pack's own.
pub async fn route_response(
    response: wit::Response,
    is_head: bool,
    pack: &str,
    artefacts: &Artefacts,
) -> Result<Response, Problem> {
    let named = response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(ARTEFACT_HEADER))
        .map(|(_, v)| v.clone());
    let Some(name) = named else {
        return into_http(response, is_head, pack);
    };
    if !artefacts.granted() {
        tracing::warn!(
            pack,
            "{ARTEFACT_HEADER} ignored: the pack has no artefacts grant"
        );
        return into_http(response, is_head, pack);
    }
    let (file, len) = artefacts.open(&name).await.map_err(|e| {
        tracing::error!(pack, artefact = %name, error = %e, "artefact cannot be sent");
        artefact_problem(pack, &e)
    })?;
    let mut out = into_http(
        wit::Response {
            body: Vec::new(),
            ..response
        },
        true,
        pack,
    )?;
    if !is_head {
        // `take`: a file still growing is sent as long as it was when opened
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024);
        *out.body_mut() = Body::from_stream(stream);
    }
    out.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(out)
}

fn artefact_problem(pack: &str, e: &ArtefactError) -> Problem {
    match e {
        ArtefactError::NotFound(_) => Problem::new(Kind::NotFound, "the artefact is gone"),
        ArtefactError::Io { .. } => Problem::new(Kind::Internal, "the artefact cannot be read"),
        ArtefactError::NotGranted | ArtefactError::BadName(_) => Problem::new(
            Kind::PackFailed,
            format!("pack `{pack}` named an invalid artefact"),
        ),
    }
}

/// Headers guards asked for, added to the final response.
pub fn add_headers(out: &mut Response, headers: Vec<(String, String)>) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) && !forbidden_header(&n)
        {
            out.headers_mut().insert(n, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_keeps_its_own_headers() {
        let response = wit::Response {
            status: 201,
            headers: vec![
                ("x-request-id".into(), "forged".into()),
                ("content-length".into(), "1".into()),
                ("x-own".into(), "1".into()),
            ],
            body: b"body".to_vec(),
        };
        let out = into_http(response, false, "p").unwrap();
        assert_eq!(out.status(), 201);
        assert!(out.headers().get("x-request-id").is_none());
        assert!(out.headers().get("content-length").is_none());
        assert_eq!(out.headers()["x-own"], "1");
        let bad = wit::Response {
            status: 1000,
            headers: vec![],
            body: vec![],
        };
        assert_eq!(into_http(bad, false, "p").unwrap_err().status(), 500);
    }

    fn naming(artefact: &str) -> wit::Response {
        wit::Response {
            status: 200,
            headers: vec![
                ("content-type".into(), "text/csv".into()),
                ("content-disposition".into(), "attachment".into()),
                (ARTEFACT_HEADER.into(), artefact.into()),
            ],
            body: b"pack body".to_vec(),
        }
    }

    async fn body_of(out: Response) -> Vec<u8> {
        use http_body_util::BodyExt;
        out.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_granted_pack_answers_its_artefact_streamed() {
        let root = tempfile::tempdir().unwrap();
        let artefacts = Artefacts::new("p", root.path(), true);
        artefacts.append("e.csv", b"a,b\r\n1,2\r\n").await.unwrap();
        let out = route_response(naming("e.csv"), false, "p", &artefacts)
            .await
            .unwrap();
        assert_eq!(out.status(), 200);
        assert!(out.headers().get(ARTEFACT_HEADER).is_none(), "never sent");
        assert_eq!(out.headers()["content-type"], "text/csv");
        assert_eq!(out.headers()["content-disposition"], "attachment");
        assert_eq!(out.headers()["content-length"], "10");
        assert_eq!(body_of(out).await, b"a,b\r\n1,2\r\n");
        let head = route_response(naming("e.csv"), true, "p", &artefacts)
            .await
            .unwrap();
        assert_eq!(head.headers()["content-length"], "10");
        assert!(body_of(head).await.is_empty());
        let gone = route_response(naming("nope"), false, "p", &artefacts).await;
        assert_eq!(gone.unwrap_err().status(), 404);
        let bad = route_response(naming("../e.csv"), false, "p", &artefacts).await;
        assert_eq!(bad.unwrap_err().status(), 500);
    }

    #[tokio::test]
    async fn an_ungranted_pack_cannot_name_a_file() {
        let root = tempfile::tempdir().unwrap();
        Artefacts::new("p", root.path(), true)
            .append("e.csv", b"secret")
            .await
            .unwrap();
        let denied = Artefacts::new("p", root.path(), false);
        let out = route_response(naming("e.csv"), false, "p", &denied)
            .await
            .unwrap();
        assert!(out.headers().get(ARTEFACT_HEADER).is_none());
        assert_eq!(body_of(out).await, b"pack body");
        // nor can a guard: the header is dropped from every response
        let guard = into_http(naming("e.csv"), false, "guard").unwrap();
        assert!(guard.headers().get(ARTEFACT_HEADER).is_none());
    }
}
