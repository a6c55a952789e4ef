//! `packs`: in-process calls into other packs. A pack may call only the packs its
//! `grants.packs` names ([`PacksGrant`]); the call carries the caller's request id and
//! principal, runs on a fresh instance of the target like any request (through the
//! [`PackCaller`] the HTTP layer connects at startup), and may nest only a few levels deep.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use wasmtime::component::{HasData, Linker};

use crate::runtime::CallContext;
use crate::runtime::bindings::valhalla::pack::packs::{self, CallRequest, Host};
use crate::runtime::bindings::{CapabilityError, Principal, Response};

/// Deepest chain of pack-to-pack calls (admin_ops → maintenance is 1).
pub const MAX_DEPTH: u8 = 4;

/// The packs one pack may call. Empty (the default) calls none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacksGrant {
    targets: BTreeSet<String>,
}

/// A `grants.packs` entry that is not another pack's name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not another pack's name")]
pub struct PacksGrantError(pub String);

impl PacksGrant {
    /// The grant of pack `own`: pack names, none of them `own`.
    pub fn parse(own: &str, targets: &[String]) -> Result<Self, PacksGrantError> {
        let targets = targets
            .iter()
            .map(|t| {
                if crate::config::is_pack_name(t) && t != own {
                    Ok(t.clone())
                } else {
                    Err(PacksGrantError(t.clone()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { targets })
    }

    pub fn allows(&self, pack: &str) -> bool {
        self.targets.contains(pack)
    }
}

/// A call as it reaches the target pack: who made it, and how deep it is.
pub struct Nested {
    pub request_id: String,
    pub principal: Option<Principal>,
    /// the target's depth (the caller's + 1)
    pub depth: u8,
}

/// Why the [`PackCaller`] could not answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackCallError {
    #[error("not enabled")]
    NotLoaded,
    #[error("no route")]
    NoRoute,
    /// the target failed (trap, deadline, memory); the message is for the host log
    #[error("{0}")]
    Failed(String),
}

/// The future a [`PackCaller`] answers with (boxed: a target may call a pack in turn).
pub type CallFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response, PackCallError>> + Send + 'a>>;

/// Serves in-process calls: implemented by the HTTP layer, which owns the route table.
pub trait PackCaller: Send + Sync {
    fn call<'a>(&'a self, pack: &'a str, request: CallRequest, nested: Nested) -> CallFuture<'a>;
}

/// The way to the [`PackCaller`], shared by every pack and connected once the route table
/// exists, and again by each reload (weak: the caller owns the packs, whose capabilities hold
/// this).
#[derive(Clone)]
pub struct PackCalls(Arc<ArcSwap<Weak<dyn PackCaller>>>);

impl Default for PackCalls {
    fn default() -> Self {
        let none: Weak<dyn PackCaller> = Weak::<Disconnected>::new();
        Self(Arc::new(ArcSwap::from_pointee(none)))
    }
}

impl PackCalls {
    /// Connect the caller, replacing the one before (a reload connects the new pack set's).
    pub fn connect(&self, caller: Weak<dyn PackCaller>) {
        self.0.store(Arc::new(caller));
    }

    fn caller(&self) -> Option<Arc<dyn PackCaller>> {
        self.0.load().upgrade()
    }
}

/// The caller before one is connected: never reached (its `Weak` never upgrades).
struct Disconnected;

impl PackCaller for Disconnected {
    fn call<'a>(&'a self, _: &'a str, _: CallRequest, _: Nested) -> CallFuture<'a> {
        Box::pin(async { Err(PackCallError::NotLoaded) })
    }
}

/// One pack's `packs` import: its grant and the way to the other packs.
pub struct PackCalling {
    pack: String,
    grant: PacksGrant,
    calls: PackCalls,
}

impl PackCalling {
    pub fn new(pack: &str, grant: PacksGrant, calls: PackCalls) -> Self {
        Self {
            pack: pack.to_string(),
            grant,
            calls,
        }
    }
}

/// What one call's `packs` imports see.
pub struct PacksView<'a> {
    pub packs: &'a PackCalling,
    pub call: &'a CallContext,
}

struct PacksData;

impl HasData for PacksData {
    type Data<'a> = PacksView<'a>;
}

/// Link `packs` for stores whose data `get` views.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> PacksView<'_>,
) -> wasmtime::Result<()> {
    packs::add_to_linker::<T, PacksData>(linker, get)
}

impl Host for PacksView<'_> {
    async fn call(
        &mut self,
        pack: String,
        request: CallRequest,
    ) -> Result<Response, CapabilityError> {
        let me = &self.packs.pack;
        if !self.packs.grant.allows(&pack) {
            tracing::warn!(pack = %me, target = %pack, "in-process call refused: not granted");
            return Err(CapabilityError::AccessDenied(format!(
                "pack `{pack}` is not in this pack's grants.packs"
            )));
        }
        if self.call.depth >= MAX_DEPTH {
            return Err(CapabilityError::Invalid(format!(
                "pack calls nest at most {MAX_DEPTH} deep"
            )));
        }
        let caller = self
            .packs
            .calls
            .caller()
            .ok_or_else(|| CapabilityError::Unavailable("the server is not serving".into()))?;
        let path = request.path.clone();
        let nested = Nested {
            request_id: self.call.request_id.clone(),
            principal: self.call.principal.clone(),
            depth: self.call.depth + 1,
        };
        caller
            .call(&pack, request, nested)
            .await
            .map_err(|e| match e {
                PackCallError::NotLoaded => {
                    CapabilityError::Unavailable(format!("pack `{pack}` is not enabled"))
                }
                PackCallError::NoRoute => {
                    CapabilityError::NotFound(format!("pack `{pack}` has no route for {path}"))
                }
                PackCallError::Failed(e) => {
                    tracing::warn!(pack = %me, target = %pack, error = %e, "in-process call failed");
                    CapabilityError::Unavailable(format!("pack `{pack}` failed: {e}"))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::runtime::bindings::Method;

    /// Answers 200 for `maintenance`, records who asked at what depth.
    #[derive(Default)]
    struct Fake {
        seen: Mutex<Vec<(String, String, u8)>>,
    }

    impl PackCaller for Fake {
        fn call<'a>(
            &'a self,
            pack: &'a str,
            request: CallRequest,
            nested: Nested,
        ) -> CallFuture<'a> {
            Box::pin(async move {
                if let Ok(mut seen) = self.seen.lock() {
                    seen.push((pack.to_string(), nested.request_id, nested.depth));
                }
                match pack {
                    "maintenance" if request.path == "/system/maintenance" => Ok(Response {
                        status: 200,
                        headers: vec![],
                        body: vec![],
                    }),
                    "maintenance" => Err(PackCallError::NoRoute),
                    "broken" => Err(PackCallError::Failed("trapped".into())),
                    _ => Err(PackCallError::NotLoaded),
                }
            })
        }
    }

    fn request(path: &str) -> CallRequest {
        CallRequest {
            method: Method::Get,
            path: path.into(),
            query: vec![],
            body: vec![],
        }
    }

    fn calling(grant: &[&str], calls: &PackCalls) -> PackCalling {
        let grant: Vec<String> = grant.iter().map(|g| g.to_string()).collect();
        PackCalling::new(
            "admin_ops",
            PacksGrant::parse("admin_ops", &grant).unwrap(),
            calls.clone(),
        )
    }

    async fn call(
        packs: &PackCalling,
        depth: u8,
        pack: &str,
        path: &str,
    ) -> Result<Response, CapabilityError> {
        let call = CallContext {
            request_id: "rid".into(),
            principal: None,
            depth,
        };
        PacksView { packs, call: &call }
            .call(pack.into(), request(path))
            .await
    }

    #[test]
    fn a_grant_names_other_packs_only() {
        assert!(PacksGrant::parse("a", &["b".into()]).unwrap().allows("b"));
        assert_eq!(
            PacksGrant::parse("a", &["a".into()]),
            Err(PacksGrantError("a".into()))
        );
        assert!(PacksGrant::parse("a", &["Bad Name".into()]).is_err());
    }

    #[tokio::test]
    async fn an_ungranted_pack_is_access_denied_before_any_call() {
        let fake: Arc<dyn PackCaller> = Arc::new(Fake::default());
        let calls = PackCalls::default();
        calls.connect(Arc::downgrade(&fake));
        let packs = calling(&["maintenance"], &calls);
        match call(&packs, 0, "system_config", "/system/config").await {
            Err(CapabilityError::AccessDenied(m)) => assert!(m.contains("grants.packs"), "{m}"),
            other => panic!("expected access-denied, got {other:?}"),
        }
        assert!(
            call(&packs, 0, "maintenance", "/system/maintenance")
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn calls_carry_the_request_and_nest_a_few_deep() {
        let fake = Arc::new(Fake::default());
        let dyn_fake: Arc<dyn PackCaller> = fake.clone();
        let calls = PackCalls::default();
        calls.connect(Arc::downgrade(&dyn_fake));
        let packs = calling(&["maintenance"], &calls);
        call(&packs, 1, "maintenance", "/system/maintenance")
            .await
            .unwrap();
        assert_eq!(
            *fake.seen.lock().unwrap(),
            [("maintenance".to_string(), "rid".to_string(), 2)]
        );
        assert!(matches!(
            call(&packs, MAX_DEPTH, "maintenance", "/system/maintenance").await,
            Err(CapabilityError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn missing_packs_routes_and_servers_are_told_apart() {
        let fake: Arc<dyn PackCaller> = Arc::new(Fake::default());
        let calls = PackCalls::default();
        let packs = calling(&["maintenance", "gone", "broken"], &calls);
        assert!(matches!(
            call(&packs, 0, "maintenance", "/x").await,
            Err(CapabilityError::Unavailable(m)) if m.contains("not serving")
        ));
        calls.connect(Arc::downgrade(&fake));
        assert!(matches!(
            call(&packs, 0, "gone", "/x").await,
            Err(CapabilityError::Unavailable(m)) if m == "pack `gone` is not enabled"
        ));
        assert!(matches!(
            call(&packs, 0, "maintenance", "/x").await,
            Err(CapabilityError::NotFound(m)) if m == "pack `maintenance` has no route for /x"
        ));
        assert!(matches!(
            call(&packs, 0, "broken", "/x").await,
            Err(CapabilityError::Unavailable(m)) if m == "pack `broken` failed: trapped"
        ));
    }
}
