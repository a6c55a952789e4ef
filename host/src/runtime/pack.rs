//! A loaded pack: its component linked once (`InstancePre`), its manifest, and the calls
//! into it, each on a fresh instance with a deadline and a memory cap.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Linker,
    Lower, TypedFunc,
};
use wasmtime::{AsContextMut, Store, Trap, UpdateDeadline};

use super::admission::Slot;
use super::bindings::{Decision, Manifest, Request, Response};
use super::engine::RuntimeEngine;
use super::state::{CallContext, PackContext, State};
use super::{PackError, RuntimeError};
use crate::capabilities::cache::MemoRequest;
use crate::metrics::{Failure, PackSeries};
use crate::telemetry::{self, Span};

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

/// The world's four exports, found in the component and type-checked once, on the first
/// instance. A call then looks up only the export it makes: bindgen's `PackPre` would look
/// up and type-check all four on every instance.
struct Exports {
    manifest: ComponentExportIndex,
    handle: ComponentExportIndex,
    guard: ComponentExportIndex,
    tick: ComponentExportIndex,
}

impl Exports {
    /// The exports of `component`, checked against the signatures the getters below use, on
    /// `instance` (an instance of that component).
    fn checked(
        component: &Component,
        mut store: impl AsContextMut,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        let index = |name: &str| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| wasmtime::format_err!("no export `{name}`"))
        };
        let exports = Self {
            manifest: index("manifest")?,
            handle: index("handle")?,
            guard: index("guard")?,
            tick: index("tick")?,
        };
        instance.get_typed_func::<(), (Manifest,)>(&mut store, &exports.manifest)?;
        instance.get_typed_func::<(&Request,), (Response,)>(&mut store, &exports.handle)?;
        instance.get_typed_func::<(&Request,), (Decision,)>(&mut store, &exports.guard)?;
        instance.get_typed_func::<(), (Result<String, String>,)>(&mut store, &exports.tick)?;
        Ok(exports)
    }

    fn manifest(&self, store: &mut Store<State>, instance: &Instance) -> Export<(), (Manifest,)> {
        // SAFETY: `checked` verified this signature for this export of the same component.
        unsafe { typed(store, instance, &self.manifest) }
    }

    fn handle<'a>(
        &self,
        store: &mut Store<State>,
        instance: &Instance,
    ) -> Export<(&'a Request,), (Response,)> {
        // SAFETY: as above.
        unsafe { typed(store, instance, &self.handle) }
    }

    fn guard<'a>(
        &self,
        store: &mut Store<State>,
        instance: &Instance,
    ) -> Export<(&'a Request,), (Decision,)> {
        // SAFETY: as above.
        unsafe { typed(store, instance, &self.guard) }
    }

    fn tick(
        &self,
        store: &mut Store<State>,
        instance: &Instance,
    ) -> Export<(), (Result<String, String>,)> {
        // SAFETY: as above.
        unsafe { typed(store, instance, &self.tick) }
    }
}

type Export<P, R> = wasmtime::Result<TypedFunc<P, R>>;

/// Export `index` of `instance` as a function of type `(P) -> R`, without a type check.
///
/// # Safety
/// `(P, R)` must be the export's type, checked on an instance of the same component: every
/// instance of one `InstancePre` has the same export types.
unsafe fn typed<P, R>(
    store: &mut Store<State>,
    instance: &Instance,
    index: &ComponentExportIndex,
) -> Export<P, R>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    let func = instance
        .get_func(store, index)
        .ok_or_else(|| wasmtime::format_err!("the pack's export is missing"))?;
    // SAFETY: the caller guarantees the type, as stated above.
    Ok(unsafe { TypedFunc::new_unchecked(func) })
}

/// A pack ready to serve.
pub struct LoadedPack {
    pub manifest: Manifest,
    pub ctx: Arc<PackContext>,
    instances: Instances,
    exports: Exports,
}

impl LoadedPack {
    /// Link `component` against the host capabilities, check its exports and read its
    /// manifest.
    pub async fn load(
        engine: &RuntimeEngine,
        component: &Component,
        ctx: Arc<PackContext>,
    ) -> Result<Self, RuntimeError> {
        let link_err = |e: wasmtime::Error| RuntimeError::Link {
            pack: ctx.name.clone(),
            message: format!("{e:#}"),
        };
        let manifest_err = |e: PackError| RuntimeError::Manifest {
            pack: ctx.name.clone(),
            message: e.to_string(),
        };
        let mut linker: Linker<State> = Linker::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link_err)?;
        crate::capabilities::add_to_linker(&mut linker).map_err(link_err)?;
        let instances = Instances {
            pre: linker.instantiate_pre(component).map_err(link_err)?,
            engine: engine.clone(),
            metrics: PackSeries::new(&ctx.name),
            ctx: Arc::clone(&ctx),
        };
        let (_slot, mut store, instance, deadline) = instances
            .instantiate(CallKind::Manifest, CallContext::default())
            .await
            .map_err(manifest_err)?;
        let exports = Exports::checked(component, &mut store, &instance).map_err(link_err)?;
        let call = async {
            let f = exports.manifest(&mut store, &instance)?;
            f.call_async(&mut store, ()).await
        };
        let result = tokio::time::timeout(backstop(deadline), call).await;
        let (manifest,) = instances
            .finish(result, &store, deadline)
            .map_err(manifest_err)?;
        Ok(Self {
            manifest,
            ctx,
            instances,
            exports,
        })
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// Its series in `/metrics` (instantiations, failures, guard decisions, ticks).
    pub fn metrics(&self) -> &PackSeries {
        &self.instances.metrics
    }

    /// Serve a request.
    pub async fn handle(&self, request: &Request) -> Result<Response, PackError> {
        self.handle_at(request, 0).await
    }

    /// Serve a request made by another pack, `depth` calls deep.
    pub async fn handle_at(&self, request: &Request, depth: u8) -> Result<Response, PackError> {
        let context = call_context(request, depth);
        let exports = &self.exports;
        let call = self.instances.call(
            CallKind::Handle,
            context,
            |s, i| exports.handle(s, i),
            (request,),
        );
        if !telemetry::span::recording() {
            // the call's future is not moved into another: as it was before spans
            return call.await.map(|(r,)| r);
        }
        if depth == 0 {
            Span::note_route(&request.route);
        }
        self.traced("handle", depth, call).await.map(|(r,)| r)
    }

    /// `call` in a span of its own when the request is recorded (pack, export, depth).
    async fn traced<T>(
        &self,
        export: &'static str,
        depth: u8,
        call: impl Future<Output = Result<T, PackError>>,
    ) -> Result<T, PackError> {
        let name = || format!("pack {} {export}", self.name()).into();
        let attributes = || telemetry::span::pack_call(self.name(), export, depth);
        telemetry::span::traced(name, attributes, call).await
    }

    /// Ask the guard about a request.
    pub async fn guard(&self, request: &Request) -> Result<Decision, PackError> {
        self.guard_memo(request).await.map(|(d, _)| d)
    }

    /// Run the guard; also what it memoized (`memoize-decision`), if anything.
    pub async fn guard_memo(
        &self,
        request: &Request,
    ) -> Result<(Decision, Option<MemoRequest>), PackError> {
        if !telemetry::span::recording() {
            return self.guard_call(request).await;
        }
        Span::note_route(&request.route);
        self.traced("guard", 0, self.guard_call(request)).await
    }

    async fn guard_call(
        &self,
        request: &Request,
    ) -> Result<(Decision, Option<MemoRequest>), PackError> {
        let context = call_context(request, 0);
        let exports = &self.exports;
        let (_slot, mut store, instance, deadline) =
            self.instances.instantiate(CallKind::Guard, context).await?;
        let call = async {
            let f = exports.guard(&mut store, &instance)?;
            f.call_async(&mut store, (request,)).await
        };
        let result = tokio::time::timeout(backstop(deadline), call).await;
        let (decision,) = self.instances.finish(result, &store, deadline)?;
        Ok((decision, store.data_mut().cache_call.take_memo()))
    }

    /// Run scheduled work, as a trace of its own (its outbound requests carry it).
    pub async fn tick(&self) -> Result<Result<String, String>, PackError> {
        let exports = &self.exports;
        let call = self.instances.call(
            CallKind::Tick,
            CallContext::default(),
            |s, i| exports.tick(s, i),
            (),
        );
        let mut span = Span::root(
            || format!("pack {} tick", self.name()).into(),
            || telemetry::span::pack_call(self.name(), "tick", 0),
        );
        let result = span.scope(call).await;
        match &result {
            Err(e) => span.fail(|| e.to_string()),
            Ok((Err(e),)) => span.fail(|| format!("tick failed: {e}")),
            Ok((Ok(_),)) => {}
        }
        result.map(|(t,)| t)
    }
}

/// Fresh instances of one pack, and the classification of their failures.
struct Instances {
    pre: InstancePre<State>,
    engine: RuntimeEngine,
    ctx: Arc<PackContext>,
    /// its instantiations and failures, for `/metrics`
    metrics: PackSeries,
}

impl Instances {
    /// Call the export `func` picks on a fresh instance, within the call's deadline.
    async fn call<P, R>(
        &self,
        kind: CallKind,
        context: CallContext,
        func: impl FnOnce(&mut Store<State>, &Instance) -> Export<P, R>,
        params: P,
    ) -> Result<R, PackError>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        let (_slot, mut store, instance, deadline) = self.instantiate(kind, context).await?;
        let call = async {
            let f = func(&mut store, &instance)?;
            f.call_async(&mut store, params).await
        };
        let result = tokio::time::timeout(backstop(deadline), call).await;
        self.finish(result, &store, deadline)
    }

    /// A fresh instance in a new store with the call's deadline and memory cap, and its
    /// place in the pool (waited for within `runtime.instance_wait_ms`; bound first, so
    /// that it is dropped after the store).
    async fn instantiate(
        &self,
        kind: CallKind,
        call: CallContext,
    ) -> Result<(Slot, Store<State>, Instance, Duration), PackError> {
        let deadline = match kind {
            CallKind::Tick => self.engine.tick_deadline,
            _ => self.ctx.deadline.unwrap_or(self.engine.deadline),
        };
        let Some(slot) = self.engine.slots.acquire().await else {
            self.metrics.failed(Failure::Busy);
            return Err(PackError::Busy {
                pack: self.ctx.name.clone(),
                detail: format!(
                    "no free instance within {} ms",
                    self.engine.slots.wait().as_millis()
                ),
            });
        };
        let until = std::time::Instant::now() + deadline;
        let state = State::new(
            Arc::clone(&self.ctx),
            call,
            self.engine.memory_limit_bytes,
            until,
        );
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick the guest yields to the executor, as `yield_now` does: the worker
        // runs its other tasks and polls for I/O first (new connections, the health probes);
        // at the deadline it traps.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if std::time::Instant::now() >= until {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => {
                self.metrics.instantiated();
                Ok((slot, store, instance, deadline))
            }
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
            Err(_) => {
                self.metrics.failed(Failure::Deadline);
                Err(PackError::Deadline {
                    pack: self.ctx.name.clone(),
                    ms: deadline.as_millis(),
                })
            }
        }
    }

    /// Classify a failure and count it.
    fn classify(
        &self,
        store: &Store<State>,
        e: wasmtime::Error,
        deadline: Duration,
        instantiating: bool,
    ) -> PackError {
        let error = self.kind_of(store, e, deadline, instantiating);
        self.metrics.failed(match &error {
            PackError::Trap { .. } => Failure::Trap,
            PackError::Deadline { .. } => Failure::Deadline,
            PackError::OutOfMemory { .. } => Failure::OutOfMemory,
            PackError::Busy { .. } => Failure::Busy,
        });
        error
    }

    fn kind_of(
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
