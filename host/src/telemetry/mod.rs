//! Tracing across services: W3C Trace Context in and out ([`traceparent`]), spans for the
//! request, the guard chain, every pack call and every capability call ([`span`]), and their
//! export over OTLP/HTTP when `[telemetry] otlp_endpoint` is set ([`export`]).

pub mod export;
pub mod span;
pub mod traceparent;

use serde::Deserialize;

pub use export::{init, shutdown};
pub use span::{Current, Span, outbound_context, within};
pub use traceparent::{SpanIds, TRACEPARENT, TRACESTATE, parse_traceparent, parse_tracestate};

/// A capability error's kind, for a span's status (its message may carry details).
pub fn error_kind(e: &crate::runtime::bindings::CapabilityError) -> &'static str {
    use crate::runtime::bindings::CapabilityError as E;
    match e {
        E::AccessDenied(_) => "access-denied",
        E::NotFound(_) => "not-found",
        E::Conflict(_) => "conflict",
        E::Invalid(_) => "invalid",
        E::Unavailable(_) => "unavailable",
        E::Internal(_) => "internal",
    }
}

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot start the OTLP span exporter: {0}")]
    Exporter(String),
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (spans go to `<it>/v1/traces`);
    /// unset: no span is recorded or exported.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces recorded (a caller's sampled flag decides for its own).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "valhalla".into(),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    /// The first problem, as (key, problem).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(endpoint) = &self.otlp_endpoint {
            let uri: http::Uri = endpoint.parse().map_err(|_| {
                (
                    "telemetry.otlp_endpoint",
                    format!("`{endpoint}` is not a URL"),
                )
            })?;
            let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
            if !scheme_ok || uri.host().is_none_or(str::is_empty) || uri.query().is_some() {
                return Err((
                    "telemetry.otlp_endpoint",
                    format!(
                        "`{endpoint}` is not an http:// or https:// URL like http://127.0.0.1:4318"
                    ),
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(("telemetry.service_name", "must not be empty".into()));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(("telemetry.sample_ratio", "must be between 0 and 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_endpoint(e: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: Some(e.into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_section_parses_overrides_and_validates_naming_the_key() {
        let path = std::path::Path::new("c.toml");
        let text = "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.5\n";
        let mut c = crate::Config::parse(text, path).unwrap();
        assert_eq!(c.telemetry.service_name, "valhalla");
        assert_eq!(c.telemetry.sample_ratio, 0.5);
        let vars = [
            ("VALHALLA_OTLP_ENDPOINT", "http://collector:4318"),
            ("VALHALLA_SERVICE_NAME", "edge"),
        ];
        crate::config::apply_env_overrides(
            &mut c,
            vars.map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
        assert_eq!(c.telemetry.service_name, "edge");
        let bad = crate::Config::parse("[telemetry]\notlp_endpoint = \"nope\"\n", path).unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("telemetry.otlp_endpoint"), "{err}");
        assert!(crate::Config::parse("[telemetry]\nendpoint = \"x\"\n", path).is_err());
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(TelemetryConfig::default().check().is_ok());
        assert!(with_endpoint("http://127.0.0.1:4318").check().is_ok());
        assert!(
            with_endpoint("https://otel.example.com/base/")
                .check()
                .is_ok()
        );
        for bad in [
            "127.0.0.1:4318",
            "ftp://x",
            "http://",
            "not a url",
            "http://h/?q=1",
        ] {
            let (key, _) = with_endpoint(bad).check().unwrap_err();
            assert_eq!(key, "telemetry.otlp_endpoint", "{bad}");
        }
        let ratio = TelemetryConfig {
            sample_ratio: 1.5,
            ..Default::default()
        };
        assert_eq!(ratio.check().unwrap_err().0, "telemetry.sample_ratio");
        assert_eq!(
            export::traces_url("http://h:4318/"),
            "http://h:4318/v1/traces"
        );
    }
}
