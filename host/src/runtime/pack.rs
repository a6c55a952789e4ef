//! A loaded pack: its component linked once (`InstancePre`), its manifest, and the calls
//! into it, each on a fresh instance with a deadline and a memory cap.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, Trap};

use super::bindings::{Decision, Manifest, Pack, PackPre, Request, Response};
use super::engine::RuntimeEngine;
use super::state::{CallContext, PackContext, State};
use super::{PackError, RuntimeError};

/// Which export a call goes to; scheduled ticks get the longer deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Handle,
    Guard,
    Tick,
    Manifest,
}

/// The epoch stops a guest that computes forever; this stops one stuck in a host call.
fn backstop(deadline: Duration) -> Duration {
    deadline + Duration::from_secs(1)
}

fn call_context(request: &Request, depth: u8) -> CallContext {
    CallContext {
        request_id: request.request_id.clone(),
        principal: request.principal.clone(),
        depth,
    }
}

/// A pack ready to serve.
pub struct LoadedPack {
    pub manifest: Manifest,
    pub ctx: Arc<PackContext>,
    pre: PackPre<State>,
    engine: RuntimeEngine,
}

impl LoadedPack {
    /// Link `component` against the host capabilities and read its manifest.
    pub async fn load(
        engine: &RuntimeEngine,
        component: &Component,
        ctx: Arc<PackContext>,
    ) -> Result<Self, RuntimeError> {
        let link_err = |e: wasmtime::Error| RuntimeError::Link {
            pack: ctx.name.clone(),
            message: format!("{e:#}"),
        };
        let mut linker: Linker<State> = Linker::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_err)?;
        Pack::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).map_err(link_err)?;
        let pre =
            PackPre::new(linker.instantiate_pre(component).map_err(link_err)?).map_err(link_err)?;
        let mut pack = Self {
            manifest: Manifest {
                name: ctx.name.clone(),
                version: String::new(),
                description: String::new(),
                routes: Vec::new(),
                guard: None,
                schedule: None,
            },
            ctx,
            pre,
            engine: engine.clone(),
        };
        let manifest = async {
            let (mut store, instance, deadline) = pack
                .instantiate(CallKind::Manifest, CallContext::default())
                .await?;
            let result =
                tokio::time::timeout(backstop(deadline), instance.call_manifest(&mut store)).await;
            pack.finish(result, &store, deadline)
        }
        .await
        .map_err(|e: PackError| RuntimeError::Manifest {
            pack: pack.ctx.name.clone(),
            message: e.to_string(),
        })?;
        pack.manifest = manifest;
        Ok(pack)
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// Serve a request.
    pub async fn handle(&self, request: &Request) -> Result<Response, PackError> {
        self.handle_at(request, 0).await
    }

    /// Serve a request made by another pack, `depth` calls deep.
    pub async fn handle_at(&self, request: &Request, depth: u8) -> Result<Response, PackError> {
        let (mut store, instance, deadline) = self
            .instantiate(CallKind::Handle, call_context(request, depth))
            .await?;
        let result = tokio::time::timeout(
            backstop(deadline),
            instance.call_handle(&mut store, request),
        )
        .await;
        self.finish(result, &store, deadline)
    }

    /// Ask the guard about a request.
    pub async fn guard(&self, request: &Request) -> Result<Decision, PackError> {
        let (mut store, instance, deadline) = self
            .instantiate(CallKind::Guard, call_context(request, 0))
            .await?;
        let result =
            tokio::time::timeout(backstop(deadline), instance.call_guard(&mut store, request))
                .await;
        self.finish(result, &store, deadline)
    }

    /// Run scheduled work.
    pub async fn tick(&self) -> Result<Result<String, String>, PackError> {
        let (mut store, instance, deadline) = self
            .instantiate(CallKind::Tick, CallContext::default())
            .await?;
        let result = tokio::time::timeout(backstop(deadline), instance.call_tick(&mut store)).await;
        self.finish(result, &store, deadline)
    }

    /// A fresh instance in a new store with the call's deadline and memory cap.
    async fn instantiate(
        &self,
        kind: CallKind,
        call: CallContext,
    ) -> Result<(Store<State>, Pack, Duration), PackError> {
        let deadline = match kind {
            CallKind::Tick => self.engine.tick_deadline,
            _ => self.ctx.deadline.unwrap_or(self.engine.deadline),
        };
        let state = State::new(Arc::clone(&self.ctx), call, self.engine.memory_limit_bytes);
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(RuntimeEngine::ticks(deadline));
        store.epoch_deadline_trap();
        match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => Ok((store, instance, deadline)),
            Err(e) => Err(self.classify(&store, e, deadline, true)),
        }
    }

    /// The call's value, or its failure classified.
    fn finish<T>(
        &self,
        result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
        store: &Store<State>,
        deadline: Duration,
    ) -> Result<T, PackError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.classify(store, e, deadline, false)),
            Err(_) => Err(PackError::Deadline {
                pack: self.ctx.name.clone(),
                ms: deadline.as_millis(),
            }),
        }
    }

    fn classify(
        &self,
        store: &Store<State>,
        e: wasmtime::Error,
        deadline: Duration,
        instantiating: bool,
    ) -> PackError {
        let pack = self.ctx.name.clone();
        if store.data().limiter.exceeded {
            return PackError::OutOfMemory {
                pack,
                mib: self.engine.memory_limit_bytes >> 20,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PackError::Deadline {
                pack,
                ms: deadline.as_millis(),
            },
            Some(trap) => PackError::Trap {
                pack,
                detail: trap.to_string(),
            },
            None if instantiating => PackError::Busy {
                pack,
                detail: format!("{e:#}"),
            },
            None => PackError::Trap {
                pack,
                detail: format!("{e:#}"),
            },
        }
    }
}
