//! `log`: a pack's log lines and audit events go to `tracing`, tagged with the pack and the
//! request id. (The system_log pack will also store them when it is enabled.)

use crate::runtime::State;
use crate::runtime::bindings::valhalla::pack::log::{AuditEvent, Host, Level};

impl Host for State {
    async fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
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
    }

    async fn audit(&mut self, event: AuditEvent) {
        let actor = self
            .call
            .principal
            .as_ref()
            .map_or("anonymous", |p| p.id.as_str());
        tracing::info!(
            target: "valhalla::audit",
            pack = %self.pack.name,
            request_id = %self.call.request_id,
            actor,
            action = %event.action,
            target_id = %event.target,
            before = event.before.as_deref().unwrap_or("null"),
            after = event.after.as_deref().unwrap_or("null"),
            "audit"
        );
    }
}
