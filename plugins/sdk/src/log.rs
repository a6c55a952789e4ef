//! Structured logs and audit events through the host's `log`.

use crate::alloc_prelude::*;

use serde::Serialize;

use crate::bindings::valhalla::pack::log as host_log;
pub use host_log::Level;

/// A debug line in the host's log.
pub fn debug(message: &str) {
    host_log::log(Level::Debug, message, &[]);
}
/// An info line in the host's log.
pub fn info(message: &str) {
    host_log::log(Level::Info, message, &[]);
}
/// A warning in the host's log.
pub fn warn(message: &str) {
    host_log::log(Level::Warn, message, &[]);
}
/// An error line in the host's log.
pub fn error(message: &str) {
    host_log::log(Level::Error, message, &[]);
}

/// A log line with structured fields.
pub fn with_fields(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> =
        fields.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
    host_log::log(level, message, &fields);
}

/// Record an audit event: `action` on `target`, with the state before and after as JSON. The
/// host adds who did it, when, and the request id.
pub fn audit<B: Serialize, A: Serialize>(
    action: &str,
    target: &str,
    before: Option<&B>,
    after: Option<&A>,
) {
    host_log::audit(&event(action, target, before, after));
}

fn event<B: Serialize, A: Serialize>(
    action: &str,
    target: &str,
    before: Option<&B>,
    after: Option<&A>,
) -> host_log::AuditEvent {
    host_log::AuditEvent {
        action: action.to_string(),
        target: target.to_string(),
        before: before.and_then(|b| serde_json::to_string(b).ok()),
        after: after.and_then(|a| serde_json::to_string(a).ok()),
    }
}

/// Audit something new: `action` on `target`, nothing before, `after` after.
pub fn audit_created<A: Serialize>(action: &str, target: &str, after: &A) {
    audit::<(), A>(action, target, None, Some(after));
}

/// Audit something gone: `action` on `target`, `before` before, nothing after.
pub fn audit_deleted<B: Serialize>(action: &str, target: &str, before: &B) {
    audit::<B, ()>(action, target, Some(before), None);
}

/// Audit an upsert: `{entity}.create` when there was nothing before, `{entity}.update` otherwise.
pub fn audit_upsert<T: Serialize>(entity: &str, target: &str, before: Option<&T>, after: &T) {
    let verb = if before.is_some() { "update" } else { "create" };
    audit(&format!("{entity}.{verb}"), target, before, Some(after));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_and_deleted_events_have_one_side() {
        // what audit_created and audit_deleted hand the host
        let created = event::<(), _>("x.create", "xs/1", None, Some(&[1, 2]));
        assert_eq!((created.before, created.after.as_deref()), (None, Some("[1,2]")));
        let deleted = event::<_, ()>("x.delete", "xs/1", Some(&"gone"), None);
        assert_eq!((deleted.before.as_deref(), deleted.after), (Some("\"gone\""), None));
        assert_eq!((deleted.action.as_str(), deleted.target.as_str()), ("x.delete", "xs/1"));
    }
}
