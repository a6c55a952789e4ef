//! `log`: a pack's log lines and audit events go to `tracing`, tagged with the pack and the
//! request id, and, when the system_log pack is on, into its table (info and above, and every
//! audit event) through the [`LogSink`](super::log_sink::LogSink).

use serde_json::{Map, Value, json};

use super::log_sink::LogRecord;
use crate::runtime::State;
use crate::runtime::bindings::valhalla::pack::log::{AuditEvent, Host, Level};

impl State {
    fn correlation_id(&self) -> Option<String> {
        Some(self.call.request_id.clone()).filter(|id| !id.is_empty())
    }

    fn user_id(&self) -> Option<String> {
        self.call.principal.as_ref().map(|p| p.id.clone())
    }
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

impl Host for State {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        let pack = &self.pack.name;
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
        if let (Some(sink), Some(level)) = (&self.pack.services.log_sink, stored_level(level)) {
            let context: Map<String, Value> = fields
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            sink.push(LogRecord {
                at: super::log_sink::now(),
                level,
                category: self.pack.name.clone(),
                message,
                correlation_id: self.correlation_id(),
                user_id: self.user_id(),
                source: self.pack.name.clone(),
                context: Value::Object(context).to_string(),
            });
        }
    }

    fn audit(&mut self, event: AuditEvent) {
        let actor = self.user_id();
        tracing::info!(
            target: "valhalla::audit",
            pack = %self.pack.name,
            request_id = %self.call.request_id,
            actor = actor.as_deref().unwrap_or("anonymous"),
            action = %event.action,
            target_id = %event.target,
            "audit"
        );
        if let Some(sink) = &self.pack.services.log_sink {
            let context = json!({
                "action": event.action,
                "target": event.target,
                "actor": actor,
                "before": json_or_text(event.before.as_deref()),
                "after": json_or_text(event.after.as_deref()),
            });
            sink.push(LogRecord {
                at: super::log_sink::now(),
                level: "INFO",
                category: "audit".into(),
                message: format!("{} {}", event.action, event.target),
                correlation_id: self.correlation_id(),
                user_id: actor,
                source: self.pack.name.clone(),
                context: context.to_string(),
            });
        }
    }
}
