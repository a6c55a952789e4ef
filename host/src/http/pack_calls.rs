//! In-process pack calls, the HTTP layer's side: the [`PackCaller`] the `packs` capability is
//! connected to at startup. It finds the target pack's route in the route table and serves
//! the call on a fresh instance of that pack, as the nested call of the caller's request.

use std::sync::Arc;

use super::routes::{Lookup, Owner, RouteTable};
use crate::capabilities::packs::{CallFuture, Nested, PackCallError, PackCaller};
use crate::runtime::LoadedPack;
use crate::runtime::bindings::valhalla::pack::packs::CallRequest;
use crate::runtime::bindings::{Method, Request};

/// The packs and the route table, as in-process calls see them.
pub struct InProcess {
    packs: Vec<Arc<LoadedPack>>,
    routes: Arc<RouteTable>,
}

/// A route of one pack, found for an in-process call.
struct PackRoute<'a> {
    pack: &'a Arc<LoadedPack>,
    template: &'a str,
    params: Vec<(String, String)>,
}

impl InProcess {
    pub fn new(packs: Vec<Arc<LoadedPack>>, routes: Arc<RouteTable>) -> Self {
        Self { packs, routes }
    }

    /// `method path` of the enabled pack `name`.
    fn route(
        &self,
        name: &str,
        method: Method,
        path: &str,
    ) -> Result<PackRoute<'_>, PackCallError> {
        if !self.packs.iter().any(|p| p.name() == name) {
            return Err(PackCallError::NotLoaded);
        }
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        match self.routes.lookup(Some(method), path) {
            Lookup::Found {
                template,
                target,
                params,
            } => match target.owner {
                Owner::Pack(i) => match self.packs.get(i) {
                    Some(pack) if pack.name() == name => Ok(PackRoute {
                        pack,
                        template,
                        params,
                    }),
                    _ => Err(PackCallError::NoRoute),
                },
                Owner::Host(_) => Err(PackCallError::NoRoute),
            },
            _ => Err(PackCallError::NoRoute),
        }
    }
}

impl PackCaller for InProcess {
    fn call<'a>(&'a self, pack: &'a str, request: CallRequest, nested: Nested) -> CallFuture<'a> {
        Box::pin(async move {
            let route = self.route(pack, request.method, &request.path)?;
            let forwarded = Request {
                method: request.method,
                path: request.path,
                route: route.template.to_string(),
                params: route.params,
                query: request.query,
                headers: vec![("content-type".into(), "application/json".into())],
                body: request.body,
                request_id: nested.request_id,
                principal: nested.principal,
                client_ip: String::new(),
            };
            route
                .pack
                .handle_at(&forwarded, nested.depth)
                .await
                .map_err(|e| PackCallError::Failed(e.to_string()))
        })
    }
}
