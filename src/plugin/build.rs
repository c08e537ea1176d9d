//! What plugins get when they are built (at start and at every reload).
//!
//! Metric families are process-wide and survive reloads (a CoreDNS pain
//! point: metrics vanishing after reload): each plugin module defines its own
//! metrics struct implementing [`Family`], and [`Families::get`] registers it
//! the first time and hands out the same handles afterwards, so a plugin
//! module never touches a shared list of metrics.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::Name;
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

/// A plugin's metric handles, registered once per process.
pub trait Family: Clone + Send + Sync + 'static {
    /// Create the metrics and register them into `r`.
    fn register(r: &Registry) -> prometheus::Result<Self>;
}

/// The process's registry and the families registered in it so far.
#[derive(Clone)]
pub struct Families {
    registry: Registry,
    by_type: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl Families {
    /// Families over `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            by_type: Arc::default(),
        }
    }

    /// The registry (for `/metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The handles of family `F`, registering it on first use.
    pub fn get<F: Family>(&self) -> prometheus::Result<F> {
        let mut map = self.by_type.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map
            .get(&TypeId::of::<F>())
            .and_then(|b| b.downcast_ref::<F>())
        {
            return Ok(f.clone());
        }
        let f = F::register(&self.registry)?;
        map.insert(TypeId::of::<F>(), Box::new(f.clone()));
        Ok(f)
    }
}

/// Context for building one server block's plugins.
pub struct BuildCtx<'a> {
    /// Metric families (process-wide).
    pub families: &'a Families,
    /// CoreDNS's `server` label for this block, e.g. `dns://:53`.
    pub server: &'a str,
    /// The block's zones, lower-case.
    pub zones: &'a [Name],
    /// Cancelled when this configuration is replaced (reload) or the process
    /// stops: background tasks of a plugin (health checks, prefetch) end with it.
    pub token: &'a CancellationToken,
    /// The block's kubernetes plugin, if any (autopath `@kubernetes` asks it for the
    /// client pod's namespace).
    pub kubernetes: Option<&'a Arc<crate::plugin::kubernetes::Kubernetes>>,
    /// The addresses this block listens on (wildcards when it has no `bind`).
    pub listen: &'a [SocketAddr],
    /// Values the plugins of this block share (e.g. `loop` and `forward`).
    pub shared: &'a BlockShared,
}

/// Per-block values shared between the plugins of one server block, created
/// fresh for every block at every (re)load, so nothing leaks between blocks
/// or configurations. Keyed by type: a plugin module defines its own type.
#[derive(Default)]
pub struct BlockShared {
    by_type: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl BlockShared {
    /// The block's `T`, created with `T::default()` on first use.
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = self.by_type.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        match entry.clone().downcast::<T>() {
            Ok(t) => t,
            // Unreachable: the entry for TypeId::of::<T>() always holds a T.
            Err(_) => {
                let t = Arc::new(T::default());
                *entry = t.clone();
                t
            }
        }
    }
}

/// A build context for unit tests: a fresh registry, one root zone (or the
/// given ones), no listeners, no kubernetes plugin.
#[cfg(test)]
pub(crate) struct TestCtx {
    pub(crate) families: Families,
    pub(crate) zones: Vec<Name>,
    pub(crate) token: CancellationToken,
    pub(crate) shared: BlockShared,
}

#[cfg(test)]
impl TestCtx {
    /// A context for these zones (FQDNs) over `families`.
    pub(crate) fn new(families: &Families, zones: &[&str]) -> Self {
        Self {
            families: families.clone(),
            zones: zones
                .iter()
                .map(|z| Name::from_ascii(z).expect("zone"))
                .collect(),
            token: CancellationToken::new(),
            shared: BlockShared::default(),
        }
    }

    /// The context to build plugins with.
    pub(crate) fn ctx(&self) -> BuildCtx<'_> {
        BuildCtx {
            families: &self.families,
            server: "dns://:53",
            zones: &self.zones,
            token: &self.token,
            kubernetes: None,
            listen: &[],
            shared: &self.shared,
        }
    }
}

/// A plugin for unit tests to put after the one under test: counts the
/// queries that reach it and answers NXDOMAIN.
#[cfg(test)]
pub(crate) struct Counter(pub(crate) std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[cfg(test)]
#[async_trait::async_trait]
impl crate::plugin::Plugin for Counter {
    fn name(&self) -> &'static str {
        "whoami"
    }
    async fn serve(
        &self,
        _q: &crate::dns::Query,
        _next: crate::plugin::Next<'_>,
    ) -> crate::plugin::Result<crate::dns::Answer> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(crate::dns::Answer::rcode(
            hickory_proto::op::ResponseCode::NXDomain,
        ))
    }
}

/// `impl BuildPlugin` for a plugin's settings, given the one expression that
/// makes the running plugin from them: `|config, ctx| expr` names the settings
/// (`&Self`) and the [`BuildCtx`] for `expr`, which may use `?`. With
/// `join field`, directives written more than once become one instance whose
/// `field` (a `Vec`) holds the earlier directives' entries then the later's.
///
/// ```ignore
/// build_plugin!(Whoami, |whoami, _ctx| *whoami);
/// build_plugin!(CacheConfig, |config, ctx| Cache::new(config, ctx)?);
/// build_plugin!(RewriteConfig, |config, _ctx| Rewrite::new(config), join rules);
/// ```
macro_rules! build_plugin {
    ($config_type:ty, |$config:ident, $ctx:ident| $plugin:expr $(, join $field:ident)?) => {
        impl $crate::plugin::BuildPlugin for $config_type {
            fn build(
                &self,
                $ctx: &$crate::plugin::build::BuildCtx<'_>,
            ) -> anyhow::Result<std::sync::Arc<dyn $crate::plugin::Plugin>> {
                let $config = self;
                Ok(std::sync::Arc::new($plugin))
            }
            $(
            fn join(
                &self,
                later: &dyn $crate::plugin::BuildPlugin,
            ) -> Option<std::sync::Arc<dyn $crate::plugin::BuildPlugin>> {
                let later = $crate::plugin::registry::AsAny::as_any(later)
                    .downcast_ref::<$config_type>()?;
                let mut joined = self.clone();
                joined.$field.extend(later.$field.iter().cloned());
                Some(std::sync::Arc::new(joined))
            }
            )?
        }
    };
}
pub(crate) use build_plugin;
