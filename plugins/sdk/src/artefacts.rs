//! Artefacts: files of the pack's own in the host's export directory, for outputs too large
//! for its memory (granted by `[packs.<name>.grants] artefacts = true`). Write one a page at a
//! time with [`append`], answer it as a route's body with [`response`]: the host streams the
//! file to the client.
//!
//! ```ignore
//! artefacts::remove("export-1.csv")?;
//! artefacts::append("export-1.csv", b"key,value\r\n")?;
//! // later, in GET …/download:
//! Ok(artefacts::response("export-1.csv", "text/csv; charset=utf-8", Some("export-1.csv")))
//! ```

use crate::alloc_prelude::*;

use crate::bindings::valhalla::pack::artefacts as host_artefacts;
use crate::capability::{self, Error};
use crate::log;
use crate::problem::Problem;
use crate::response::Response;

/// The response header naming the artefact the host sends as the body.
pub const HEADER: &str = "x-valhalla-artefact";

/// The longest artefact name.
pub const MAX_NAME: usize = 128;

/// Is `name` one the host accepts: 1..=128 of `A-Z a-z 0-9 . _ -`, not starting with `.`?
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Append `data` to artefact `name` (made when missing); its size after, in bytes.
pub fn append(name: &str, data: &[u8]) -> Result<u64, Problem> {
    host_artefacts::append(name, data).map_err(problem)
}

/// The size of artefact `name` in bytes; `None` when there is none.
pub fn size(name: &str) -> Result<Option<u64>, Problem> {
    host_artefacts::size(name).map_err(problem)
}

/// Remove artefact `name`; false when there was none.
pub fn remove(name: &str) -> Result<bool, Problem> {
    host_artefacts::remove(name).map_err(problem)
}

/// A 200 whose body is artefact `name`, of `content_type`, offered as the download
/// `filename` when given (`Content-Disposition: attachment`). `filename` must be a valid
/// artefact name (it is quoted as is).
pub fn response(name: &str, content_type: &str, filename: Option<&str>) -> Response {
    let mut out = Response::raw(200, content_type, Vec::new()).with_header(HEADER, name);
    if let Some(file) = filename.filter(|f| valid_name(f)) {
        out = out.with_header("content-disposition", format!("attachment; filename=\"{file}\""));
    }
    out
}

/// A capability error as the client sees it: an ungranted pack is misconfigured, which the
/// operator fixes in config.toml (503, as a pack that needs another pack not enabled); other
/// errors are the pack's own (500); details in the log.
fn problem(e: Error) -> Problem {
    match e {
        Error::AccessDenied(m) => {
            log::error(&format!("artefacts: {m} (grant `artefacts = true` in config.toml)"));
            Problem::unavailable(
                "this pack may not write artefacts (its configuration lacks the grant)",
            )
        }
        Error::Unavailable(m) => {
            log::warn(&format!("artefacts unavailable: {m}"));
            Problem::unavailable("the artefact store is unavailable, try again")
        }
        other => {
            log::error(&format!(
                "artefacts {}: {}",
                capability::kind(&other),
                capability::message(&other)
            ));
            Problem::internal("an artefact could not be written")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_the_host_does() {
        assert!(valid_name("export-0195.csv"));
        for bad in ["", ".x", "..", "a/b", "../x", "a b", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_response_names_the_artefact_and_the_download() {
        let r = response("e.csv", "text/csv", Some("e.csv"));
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert!(r.headers.contains(&(HEADER.into(), "e.csv".into())));
        assert!(r.headers.contains(&("content-type".into(), "text/csv".into())));
        assert!(
            r.headers
                .contains(&("content-disposition".into(), "attachment; filename=\"e.csv\"".into()))
        );
        let bare = response("e.csv", "text/csv", Some("bad\"name"));
        assert!(!bare.headers.iter().any(|(n, _)| n == "content-disposition"));
    }
}
