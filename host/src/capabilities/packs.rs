//! `packs`: in-process calls into other packs. A pack may call only the packs its
//! `grants.packs` names; the call carries the caller's request id and principal, runs on a
//! fresh instance of the target like any request, and may nest only a few levels deep.

use std::future::Future;
use std::pin::Pin;

use crate::http::PackRouteError;
use crate::runtime::State;
use crate::runtime::bindings::valhalla::pack::packs::{CallRequest, Host};
use crate::runtime::bindings::{CapabilityError, Request, Response};

/// Deepest chain of pack-to-pack calls (admin_ops → maintenance is 1).
const MAX_DEPTH: u8 = 4;

impl Host for State {
    async fn call(
        &mut self,
        pack: String,
        request: CallRequest,
    ) -> Result<Response, CapabilityError> {
        if !self.pack.callable.contains(&pack) {
            tracing::warn!(pack = %self.pack.name, target = %pack, "in-process call refused: not granted");
            return Err(CapabilityError::AccessDenied(format!(
                "pack `{pack}` is not in this pack's grants.packs"
            )));
        }
        if self.call.depth >= MAX_DEPTH {
            return Err(CapabilityError::Invalid(format!(
                "pack calls nest at most {MAX_DEPTH} deep"
            )));
        }
        let app = self
            .pack
            .services
            .app()
            .ok_or_else(|| CapabilityError::Unavailable("the server is not serving".into()))?;
        let route = app
            .pack_route(&pack, request.method, &request.path)
            .map_err(|e| match e {
                PackRouteError::NotLoaded => {
                    CapabilityError::Unavailable(format!("pack `{pack}` is not enabled"))
                }
                PackRouteError::NoRoute => CapabilityError::NotFound(format!(
                    "pack `{pack}` has no route for {}",
                    request.path
                )),
            })?;
        let forwarded = Request {
            method: request.method,
            path: request.path,
            route: route.template.to_string(),
            params: route.params,
            query: request.query,
            headers: vec![("content-type".into(), "application/json".into())],
            body: request.body,
            request_id: self.call.request_id.clone(),
            principal: self.call.principal.clone(),
            client_ip: String::new(),
        };
        let target = std::sync::Arc::clone(route.pack);
        let depth = self.call.depth + 1;
        // Boxed: the target may itself call a pack, so this future is recursive.
        let nested: Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(async move { target.handle_at(&forwarded, depth).await });
        nested.await.map_err(|e| {
            tracing::warn!(pack = %self.pack.name, target = %pack, error = %e, "in-process call failed");
            CapabilityError::Unavailable(format!("pack `{pack}` failed: {e}"))
        })
    }
}
