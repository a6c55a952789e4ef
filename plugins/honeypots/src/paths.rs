//! Decoy paths: what a honeypot may serve (a path of its own outside `/system/`, that no
//! route serves), kept in the form the host hands the fallback (trailing slash removed).

use valhalla_sdk::prelude::*;

/// The longest decoy path, in characters.
pub(crate) const MAX_PATH: usize = 256;

/// The stored form of a path: without its trailing slash, as the host removes it from every
/// request before routing (`/` stays `/`).
pub(crate) fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() }
}

/// For `#[validate(custom)]`: what a path must look like, whatever the routes are.
pub(crate) fn shape(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        Err("must start with `/`")
    } else if path.chars().count() > MAX_PATH {
        Err("must be at most 256 characters")
    } else if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must not contain spaces or control characters")
    } else if path.contains(['?', '#']) {
        Err("must be a path alone, without `?` or `#`")
    } else if normalize(path).contains("//") {
        Err("must not contain empty segments (`//`)")
    } else if is_system(&normalize(path)) {
        Err("must not be under `/system/`")
    } else {
        Ok(())
    }
}

fn is_system(path: &str) -> bool {
    path == "/system" || path.starts_with("/system/")
}

/// The route template of `templates` that serves `path` (a normalized path), if one does: a
/// `{param}` segment matches any one segment. A route that serves the path for another
/// method still takes the request (405), so the method does not matter.
pub(crate) fn served_by<'a>(
    path: &str,
    templates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    templates.into_iter().find(|t| matches_template(path, t))
}

fn matches_template(path: &str, template: &str) -> bool {
    if !template.starts_with('/') {
        return false;
    }
    let template = normalize(template);
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.contains('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_their_trailing_slash() {
        assert_eq!(normalize("/wp-login.php/"), "/wp-login.php");
        assert_eq!(normalize("/a/b"), "/a/b");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("//"), "/");
    }

    #[test]
    fn a_decoy_is_a_plain_path_outside_system() {
        for good in ["/wp-login.php", "/.env", "/admin/config.php", "/a%20b", "/systems", "/"] {
            assert_eq!(shape(good), Ok(()), "{good}");
        }
        let long = format!("/{}", "a".repeat(MAX_PATH));
        for bad in [
            "wp-login.php",
            "",
            long.as_str(),
            "/a b",
            "/a\tb",
            "/a\u{7}",
            "/x?y=1",
            "/x#frag",
            "/a//b",
            "/system",
            "/system/",
            "/system/secret",
        ] {
            assert!(shape(bad).is_err(), "{bad:?}");
        }
        assert_eq!(shape(&format!("/{}", "a".repeat(MAX_PATH - 1))), Ok(()));
    }

    #[test]
    fn templates_match_one_segment_per_param() {
        let routes = ["/system/config/{key}", "/notes", "/notes/{id}/", "/debug/routes", "*"];
        assert_eq!(served_by("/notes", routes), Some("/notes"));
        assert_eq!(served_by("/notes/42", routes), Some("/notes/{id}/"));
        assert_eq!(served_by("/notes/42/x", routes), None);
        assert_eq!(served_by("/note", routes), None);
        assert_eq!(served_by("/debug/routes", routes), Some("/debug/routes"));
        assert_eq!(served_by("/debug", routes), None);
        assert_eq!(served_by("/wp-login.php", routes), None);
        assert_eq!(served_by("/", ["/"]), Some("/"));
    }
}
