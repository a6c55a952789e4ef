//! HTTP methods a route can declare, by their wire names (`GET` …), as the WIT `method` enum
//! lists them.

use crate::UnknownName;

/// A route's method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    /// Every method, in the WIT enum's order.
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
        Method::Options,
    ];

    /// `GET`, `POST` …
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }

    /// Does it change state? (Everything but `GET`, `HEAD` and `OPTIONS`.)
    pub const fn is_write(self) -> bool {
        !matches!(self, Method::Get | Method::Head | Method::Options)
    }
}

/// Parses the upper-case wire name exactly (HTTP methods are case-sensitive).
impl core::str::FromStr for Method {
    type Err = UnknownName;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == name)
            .ok_or(UnknownName)
    }
}

impl core::fmt::Display for Method {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
        }
        assert_eq!("get".parse::<Method>(), Err(UnknownName));
        assert_eq!("FETCH".parse::<Method>(), Err(UnknownName));
        assert!(Method::Post.is_write() && !Method::Head.is_write());
    }
}
