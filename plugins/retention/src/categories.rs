//! The categories retention knows, and the pack and purge route that own each (the route
//! takes `{before, limit}` and answers `{removed}`: see `plugins/sdk/src/db/purge.rs`).

/// A category of data and where it is purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Category {
    pub name: &'static str,
    /// the owning pack (granted in `[packs.retention.grants] packs`)
    pub pack: &'static str,
    /// its `POST` purge route
    pub purge_path: &'static str,
}

pub(crate) const CATEGORIES: [Category; 4] = [
    Category { name: "system_log", pack: "system_log", purge_path: "/system/logs/purge" },
    Category {
        name: "honeypot_telemetry",
        pack: "honeypots",
        purge_path: "/system/security/honeypots/telemetry/purge",
    },
    Category {
        name: "notifications_delivered",
        pack: "notifications",
        purge_path: "/system/notify/purge",
    },
    Category { name: "exports", pack: "exports", purge_path: "/system/exports/purge" },
];

/// The category names, for `one_of` rules and messages.
pub(crate) const NAMES: [&str; 4] =
    ["system_log", "honeypot_telemetry", "notifications_delivered", "exports"];

pub(crate) fn find(name: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_categories_agree() {
        let names: alloc::vec::Vec<&str> = CATEGORIES.iter().map(|c| c.name).collect();
        assert_eq!(names, NAMES);
        assert_eq!(find("exports").map(|c| c.pack), Some("exports"));
        assert_eq!(find("logs"), None);
    }
}
