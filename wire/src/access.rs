//! Route access levels (`public`, `read`, `write`, `admin`) and the role rule: which of a
//! principal's roles satisfy a level. The host enforces it; packs and the SDK describe it.

use crate::UnknownName;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// anyone, no credential needed
    Public,
    /// principals with the `read`, `write` or `admin` role
    Read,
    /// principals with the `write` or `admin` role
    Write,
    /// principals with the `admin` role
    Admin,
}

impl Access {
    /// Every level, from the most open.
    pub const ALL: [Access; 4] = [Access::Public, Access::Read, Access::Write, Access::Admin];

    /// `public`, `read`, `write`, `admin`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }

    /// The roles that satisfy this level, the least privileged first (empty for `public`:
    /// no role is needed).
    pub const fn roles(self) -> &'static [&'static str] {
        match self {
            Access::Public => &[],
            Access::Read => &["read", "write", "admin"],
            Access::Write => &["write", "admin"],
            Access::Admin => &["admin"],
        }
    }

    /// The role to ask for when a caller has none that satisfies this level (`None` for
    /// `public`).
    pub const fn needed_role(self) -> Option<&'static str> {
        match self.roles() {
            [first, ..] => Some(first),
            [] => None,
        }
    }

    /// Does a principal with `role` satisfy this level?
    pub fn allows_role(self, role: &str) -> bool {
        self.roles().contains(&role)
    }

    /// Does a principal with `roles` satisfy this level? (`public` always does.)
    pub fn allows<'a>(self, roles: impl IntoIterator<Item = &'a str>) -> bool {
        self == Access::Public || roles.into_iter().any(|r| self.allows_role(r))
    }
}

impl core::str::FromStr for Access {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Access::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .ok_or(UnknownName)
    }
}

impl core::fmt::Display for Access {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Access::ALL {
            assert_eq!(a.as_str().parse::<Access>(), Ok(a));
        }
        assert_eq!("owner".parse::<Access>(), Err(UnknownName));
    }

    #[test]
    fn role_matrix() {
        assert!(Access::Public.allows([]));
        assert!(!Access::Read.allows([]));
        assert!(Access::Read.allows(["read"]));
        assert!(Access::Read.allows(["admin"]));
        assert!(!Access::Write.allows(["read"]));
        assert!(Access::Write.allows(["other", "write"]));
        assert!(!Access::Admin.allows(["write"]));
        assert!(Access::Admin.allows(["admin"]));
        assert_eq!(Access::Write.needed_role(), Some("write"));
        assert_eq!(Access::Public.needed_role(), None);
        assert!(
            !Access::Admin.allows_role("Admin"),
            "roles are case-sensitive"
        );
    }
}
