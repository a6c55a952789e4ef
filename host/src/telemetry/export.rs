//! OTLP/HTTP (protobuf) export of recorded spans, installed once per process when
//! `[telemetry] otlp_endpoint` is set: a batch span processor (its own thread) hands batches
//! to an exporter whose HTTP client is the host's reqwest, run on the tokio runtime. Without
//! an endpoint nothing here exists, and [`tracer`] answers `None` on every span.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, Sampler, SdkTracer, SdkTracerProvider,
};

use super::span::{random_id, random_trace_id, take_next_trace};
use super::{TelemetryConfig, TelemetryError};

/// The installed exporter.
pub struct Exporting {
    pub tracer: SdkTracer,
    pub sample_ratio: f64,
    provider: SdkTracerProvider,
}

static EXPORTING: OnceLock<Exporting> = OnceLock::new();

/// The exporter, when spans are exported.
#[inline]
pub fn tracer() -> Option<&'static Exporting> {
    EXPORTING.get()
}

/// Ids as [`super::span`] chooses them: a root span takes the trace id its request was given
/// (the request id's), every span a random id.
#[derive(Debug)]
struct ChosenIds;

impl IdGenerator for ChosenIds {
    fn new_trace_id(&self) -> TraceId {
        TraceId::from(take_next_trace().unwrap_or_else(random_trace_id))
    }

    fn new_span_id(&self) -> SpanId {
        SpanId::from(random_id())
    }
}

/// The exporter's HTTP client: reqwest on the tokio runtime (the batch processor's thread has
/// no reactor of its own).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let mut out = Response::builder().status(response.status());
            if let Some(headers) = out.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(out.body(body)?)
        });
        sent.await?
    }
}

/// `<endpoint>/v1/traces`.
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// Install the exporter `config` asks for (nothing without `otlp_endpoint`). Call within the
/// tokio runtime; once per process (a second call changes nothing).
pub fn init(config: &TelemetryConfig) -> Result<bool, TelemetryError> {
    let Some(endpoint) = config.otlp_endpoint.as_deref() else {
        return Ok(false);
    };
    if EXPORTING.get().is_some() {
        return Ok(true);
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| TelemetryError::Exporter(format!("no async runtime: {e}")))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { client, runtime })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(8192)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_id_generator(ChosenIds)
        // sampled by super::span, which builds only the spans it records
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let exporting = Exporting {
        tracer: provider.tracer("valhalla"),
        sample_ratio: config.sample_ratio,
        provider,
    };
    if EXPORTING.set(exporting).is_ok() {
        tracing::info!(endpoint = %traces_url(endpoint), "exporting spans over OTLP/HTTP");
    }
    Ok(true)
}

/// Export what is queued and stop exporting (at shutdown; a no-op without an exporter).
pub async fn shutdown() {
    let Some(exporting) = EXPORTING.get() else {
        return;
    };
    let provider = exporting.provider.clone();
    // the processor's flush waits on its thread, which waits on the runtime: not on a worker
    match tokio::task::spawn_blocking(move || provider.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "span export did not finish"),
        Err(e) => tracing::warn!(error = %e, "span export did not finish"),
    }
}
