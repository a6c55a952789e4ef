//! Access levels: who the caller is when they present the bootstrap admin key, and whether a
//! principal may call a route of a given level (no credential → 401, wrong role → 403).

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::AuthConfig;
use crate::runtime::bindings::{Access, Principal};

/// The id the bootstrap admin credential acts as.
pub const BOOTSTRAP_ADMIN: &str = "bootstrap-admin";

pub struct Auth {
    pub enabled: bool,
    admin_key_hash: Option<[u8; 32]>,
}

/// Why a caller may not call a route.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// no (valid) credential
    Unauthenticated,
    /// a credential that no guard (nor the bootstrap key) accepted
    InvalidCredential,
    /// authenticated, without the role
    Forbidden { needed: &'static str },
}

/// The credential a request presents: `X-API-Key`, or `Authorization: Bearer …`.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim()).filter(|k| !k.is_empty());
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Auth {
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            enabled: config.enabled,
            admin_key_hash: config.admin_key.as_ref().map(|k| digest(k.expose())),
        }
    }

    /// The bootstrap admin, when the request presents its key (compared as digests, in
    /// constant time).
    pub fn bootstrap_principal(&self, headers: &HeaderMap) -> Option<Principal> {
        let expected = self.admin_key_hash?;
        let presented = digest(credential(headers)?);
        let same = expected
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        same.then(|| Principal {
            id: BOOTSTRAP_ADMIN.into(),
            name: "bootstrap admin".into(),
            roles: vec!["admin".into()],
        })
    }

    /// With authentication off (loopback only), every caller acts as a local admin, so packs
    /// that look at roles (the read-only shield's operator bypass, audit records) still work.
    pub fn local_principal(&self) -> Option<Principal> {
        (!self.enabled).then(|| Principal {
            id: "local".into(),
            name: "local caller (authentication off)".into(),
            roles: vec!["admin".into()],
        })
    }

    /// May `principal` call a route of level `access`? (The role rule is the wire
    /// vocabulary's: [`valhalla_wire::Access::roles`].)
    pub fn check(&self, access: Access, principal: Option<&Principal>) -> Result<(), Denied> {
        let access = valhalla_wire::Access::from(access);
        let Some(needed) = access.needed_role().filter(|_| self.enabled) else {
            return Ok(());
        };
        let principal = principal.ok_or(Denied::Unauthenticated)?;
        if access.allows(principal.roles.iter().map(String::as_str)) {
            Ok(())
        } else {
            Err(Denied::Forbidden { needed })
        }
    }
}

impl Denied {
    /// Said of a request that `presented` a credential: an unauthenticated one presented an
    /// invalid credential.
    pub fn presented(self, presented: bool) -> Self {
        match self {
            Denied::Unauthenticated if presented => Denied::InvalidCredential,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn auth() -> Auth {
        Auth::new(&AuthConfig {
            enabled: true,
            admin_key: Some(Secret::new("an-admin-key-of-enough-length")),
        })
    }

    fn who(roles: &[&str]) -> Principal {
        Principal {
            id: "p".into(),
            name: "p".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn credentials_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(credential(&h), Some("abc"));
        h.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(credential(&h), Some("xyz"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(credential(&h), None);
    }

    #[test]
    fn bootstrap_key_makes_an_admin() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-api-key",
            "an-admin-key-of-enough-length".parse().unwrap(),
        );
        assert_eq!(auth().bootstrap_principal(&h).unwrap().roles, ["admin"]);
        h.insert(
            "x-api-key",
            "an-admin-key-of-enough-lengtH".parse().unwrap(),
        );
        assert!(auth().bootstrap_principal(&h).is_none());
    }

    #[test]
    fn role_matrix() {
        let a = auth();
        assert_eq!(a.check(Access::Public, None), Ok(()));
        assert_eq!(a.check(Access::Read, None), Err(Denied::Unauthenticated));
        assert_eq!(a.check(Access::Read, Some(&who(&["read"]))), Ok(()));
        assert_eq!(
            a.check(Access::Write, Some(&who(&["read"]))),
            Err(Denied::Forbidden { needed: "write" })
        );
        assert_eq!(a.check(Access::Write, Some(&who(&["write"]))), Ok(()));
        assert_eq!(
            a.check(Access::Admin, Some(&who(&["write"]))),
            Err(Denied::Forbidden { needed: "admin" })
        );
        assert_eq!(a.check(Access::Admin, Some(&who(&["admin"]))), Ok(()));
        assert_eq!(a.check(Access::Read, Some(&who(&["admin"]))), Ok(()));
        let off = Auth::new(&AuthConfig {
            enabled: false,
            admin_key: None,
        });
        assert_eq!(off.check(Access::Admin, None), Ok(()));
    }

    #[test]
    fn a_presented_credential_that_made_no_principal_is_invalid() {
        let a = auth();
        let denied = a.check(Access::Read, None).unwrap_err();
        assert_eq!(denied.presented(true), Denied::InvalidCredential);
        let denied = a.check(Access::Read, None).unwrap_err();
        assert_eq!(denied.presented(false), Denied::Unauthenticated);
        let denied = a.check(Access::Admin, Some(&who(&["read"]))).unwrap_err();
        assert_eq!(
            denied.presented(true),
            Denied::Forbidden { needed: "admin" }
        );
    }
}
