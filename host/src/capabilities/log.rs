//! `log`: a pack's log lines and audit events go to `tracing`, tagged with the pack and the
//! request id, and, when the system_log pack is on, into its table (info and above, and every
//! audit event) through the [`LogSink`]: lines in batches, an audit event at once (its call
//! returns once the record is in the database, so the change it records is never
//! acknowledged without it).

use serde_json::{Map, Value, json};
use wasmtime::component::{HasData, Linker};

use super::log_sink::{LogRecord, now};
use crate::runtime::CallContext;
use crate::runtime::bindings::valhalla::pack::log::{self, AuditEvent, Host, Level};
use crate::services::SinkSlot;

/// One pack's `log`: its name, and the way to the system log's sink (set while that pack is
/// on).
pub struct PackLog {
    pack: String,
    sink: SinkSlot,
}

impl PackLog {
    pub fn new(pack: &str, sink: SinkSlot) -> Self {
        Self {
            pack: pack.to_string(),
            sink,
        }
    }
}

/// What one call's `log` imports see: the pack's log and who the call is for.
pub struct LogView<'a> {
    pub log: &'a PackLog,
    pub call: &'a CallContext,
}

struct LogData;

impl HasData for LogData {
    type Data<'a> = LogView<'a>;
}

/// Link `log` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> LogView<'_>,
) -> wasmtime::Result<()> {
    log::add_to_linker::<T, LogData>(linker, get)
}

fn stored_level(level: Level) -> Option<&'static str> {
    match level {
        Level::Trace | Level::Debug => None,
        Level::Info => Some("INFO"),
        Level::Warn => Some("WARNING"),
        Level::Error => Some("ERROR"),
    }
}

/// A JSON document kept as JSON when it parses, as a string otherwise.
fn json_or_text(doc: Option<&str>) -> Value {
    match doc {
        None => Value::Null,
        Some(d) => serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string())),
    }
}

impl LogView<'_> {
    fn correlation_id(&self) -> Option<String> {
        Some(self.call.request_id.clone()).filter(|id| !id.is_empty())
    }

    fn user_id(&self) -> Option<String> {
        self.call.principal.as_ref().map(|p| p.id.clone())
    }

    /// The system log's row for a log line, if its level is stored.
    fn line_record(
        &self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> Option<LogRecord> {
        let level = stored_level(level)?;
        let context: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        Some(LogRecord {
            at: now(),
            level,
            category: self.log.pack.clone(),
            message,
            correlation_id: self.correlation_id(),
            user_id: self.user_id(),
            source: self.log.pack.clone(),
            context: Value::Object(context).to_string(),
        })
    }

    /// The system log's row for an audit event.
    fn audit_record(&self, event: AuditEvent) -> LogRecord {
        let actor = self.user_id();
        let context = json!({
            "action": event.action,
            "target": event.target,
            "actor": actor,
            "before": json_or_text(event.before.as_deref()),
            "after": json_or_text(event.after.as_deref()),
        });
        LogRecord {
            at: now(),
            level: "INFO",
            category: "audit".into(),
            message: format!("{} {}", event.action, event.target),
            correlation_id: self.correlation_id(),
            user_id: actor,
            source: self.log.pack.clone(),
            context: context.to_string(),
        }
    }
}

impl Host for LogView<'_> {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let pack = &self.log.pack;
        let request_id = &self.call.request_id;
        match level {
            Level::Trace => {
                tracing::trace!(target: "valhalla::pack", %pack, %request_id, ?fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "valhalla::pack", %pack, %request_id, ?fields, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "valhalla::pack", %pack, %request_id, ?fields, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "valhalla::pack", %pack, %request_id, ?fields, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "valhalla::pack", %pack, %request_id, ?fields, "{message}")
            }
        }
        if let Some(sink) = self.log.sink.load().as_ref()
            && let Some(record) = self.line_record(level, message, fields)
        {
            sink.push(record);
        }
    }

    async fn audit(&mut self, event: AuditEvent) {
        let actor = self.user_id();
        tracing::info!(
            target: "valhalla::audit",
            pack = %self.log.pack,
            request_id = %self.call.request_id,
            actor = actor.as_deref().unwrap_or("anonymous"),
            action = %event.action,
            target_id = %event.target,
            "audit"
        );
        let sink = self.log.sink.load_full();
        if let Some(sink) = sink {
            sink.write_now(self.audit_record(event)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::Principal;

    fn call() -> CallContext {
        CallContext {
            request_id: "rid-1".into(),
            principal: Some(Principal {
                id: "client-7".into(),
                name: "ops".into(),
                roles: vec!["admin".into()],
            }),
            depth: 0,
        }
    }

    #[test]
    fn lines_below_info_are_not_stored() {
        let (log, call) = (PackLog::new("flags", SinkSlot::default()), call());
        let view = LogView {
            log: &log,
            call: &call,
        };
        assert!(view.line_record(Level::Debug, "m".into(), vec![]).is_none());
        let r = view
            .line_record(Level::Warn, "m".into(), vec![("k".into(), "v".into())])
            .unwrap();
        assert_eq!(
            (r.level, r.category.as_str(), r.source.as_str()),
            ("WARNING", "flags", "flags")
        );
        assert_eq!(r.correlation_id.as_deref(), Some("rid-1"));
        assert_eq!(r.user_id.as_deref(), Some("client-7"));
        assert_eq!(r.context, r#"{"k":"v"}"#);
    }

    #[test]
    fn audit_events_name_the_actor_and_keep_json() {
        let log = PackLog::new("system_config", SinkSlot::default());
        let call = CallContext::default();
        let view = LogView {
            log: &log,
            call: &call,
        };
        let r = view.audit_record(AuditEvent {
            action: "config.upsert".into(),
            target: "system_config/a".into(),
            before: None,
            after: Some(r#"{"v":1}"#.into()),
        });
        assert_eq!(
            (r.category.as_str(), r.message.as_str()),
            ("audit", "config.upsert system_config/a")
        );
        assert_eq!(r.correlation_id, None, "no request id, no correlation");
        let context: Value = serde_json::from_str(&r.context).unwrap();
        assert_eq!(context["after"]["v"], 1);
        assert_eq!(context["actor"], Value::Null);
    }
}
