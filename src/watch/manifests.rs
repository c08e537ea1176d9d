//! The `manifests PATH...` source: cluster objects read from YAML/JSON files
//! instead of an API server (DESIGN.md §3), re-read when the files change.
//!
//! Each path is a file or a directory (its `*.yaml`, `*.yml` and `*.json`
//! files, sorted, hidden ones skipped, so a ConfigMap volume's `..data` is not
//! read twice). A file holds one or more YAML documents, each an object or a
//! `kind: List` (or typed `ServiceList`, ...) of them. v1 Service, Endpoints,
//! Pod, Namespace, discovery.k8s.io/v1 EndpointSlice and (for `multicluster`)
//! multicluster.x-k8s.io/v1alpha1 ServiceImport are kept (an EndpointSlice
//! labelled `multicluster.kubernetes.io/service-name` as an imported one);
//! every other kind is skipped. Invariants:
//! - a load is all or nothing: one bad document fails the whole load, and the
//!   poller ([`Manifests::run`]) then keeps serving the previous good state;
//! - legacy Endpoints count only for Services that have no EndpointSlice in the
//!   set, so addresses are never doubled;
//! - every namespace an object lives in exists (a real cluster cannot hold an
//!   object in a missing namespace), whether or not its Namespace is written;
//!   except with `namespace_labels` ([`Manifests::namespace_selector`]): then
//!   only the written Namespaces whose labels match are sent, and the index
//!   (made by `ClusterIndex::namespace_filtered`) exposes nothing else.
//!   Editing a Namespace's labels in the files adds or removes it at the next load.

mod poll;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::convert::{self, ConvertError};
use crate::index::model;
use crate::index::{Kind, Object};
use crate::k8s::selector::Selector;

/// The `manifests` source, ready to [`run`](Manifests::run).
#[derive(Clone, Debug)]
pub struct Manifests {
    /// Files and directories to read, in order.
    pub paths: Vec<PathBuf>,
    /// The plugin's `labels` selector (Services, EndpointSlices, Endpoints, Pods).
    pub selector: Option<Selector>,
    /// The plugin's `namespace_labels` selector (Namespaces).
    pub namespace_selector: Option<Selector>,
    /// How often the files are checked for changes.
    pub interval: Duration,
}

impl Manifests {
    /// The default polling interval.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(250);

    /// A source over `paths` with the default interval.
    pub fn new(paths: Vec<PathBuf>, selector: Option<Selector>) -> Self {
        Manifests {
            paths,
            selector,
            namespace_selector: None,
            interval: Self::DEFAULT_INTERVAL,
        }
    }
}

/// Where in the manifests a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column, when the YAML parser knows them.
    pub line_col: Option<(usize, usize)>,
    /// 1-based index of the YAML document in the file.
    pub document: usize,
    /// 1-based index in the `items` of a List document.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        Ok(())
    }
}

/// Why the manifests could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A path could not be listed or read (missing, unreadable, not UTF-8).
    #[error("{}: {source}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML, not an object, or does not fit its kind.
    #[error("{at}: {message}")]
    Parse {
        /// Where.
        at: Origin,
        /// The parser's message, without its own location.
        message: String,
    },
    /// An object lacks what DNS needs (e.g. `metadata.name`).
    #[error("{at}: {source}")]
    Convert {
        /// Where.
        at: Origin,
        /// What is missing.
        #[source]
        source: ConvertError,
    },
}

impl ManifestError {
    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Read { path, .. } => path,
            ManifestError::Parse { at, .. } | ManifestError::Convert { at, .. } => &at.path,
        }
    }
}

/// Reads every manifest under `paths` and converts the objects DNS uses;
/// `selector` filters Services, EndpointSlices, Endpoints and Pods by label.
pub fn load(paths: &[PathBuf], selector: Option<&Selector>) -> Result<Vec<Object>, ManifestError> {
    let filters = Filters {
        labels: selector,
        namespace_labels: None,
    };
    parse_sources(&read_sources(paths)?, filters)
}

/// The label selectors of the kubernetes plugin, as a load applies them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filters<'a> {
    /// `labels`: Services, EndpointSlices, Endpoints, Pods.
    pub labels: Option<&'a Selector>,
    /// `namespace_labels`: Namespaces; when set, namespaces are only the
    /// written Namespace objects that match.
    pub namespace_labels: Option<&'a Selector>,
}

/// Like [`load`], with both selectors of the plugin.
pub fn load_filtered(
    paths: &[PathBuf],
    filters: Filters<'_>,
) -> Result<Vec<Object>, ManifestError> {
    parse_sources(&read_sources(paths)?, filters)
}

/// Parses manifest `text` as if read from `path`, without touching the file
/// system: what [`load`] does for each file (the fuzz targets use it).
pub fn parse_text(
    path: &Path,
    text: &str,
    filters: Filters<'_>,
) -> Result<Vec<Object>, ManifestError> {
    let source = Source {
        path: path.to_path_buf(),
        text: text.to_string(),
    };
    parse_sources(std::slice::from_ref(&source), filters)
}

// === reading ===

/// One manifest file's path and text.
#[derive(Debug, Hash)]
struct Source {
    path: PathBuf,
    text: String,
}

/// Whether a directory entry is a manifest: a visible `*.yaml|*.yml|*.json`.
fn is_manifest(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str());
    !hidden && matches!(ext, Some("yaml" | "yml" | "json"))
}

/// The files `paths` stand for: files as given, directories expanded (sorted).
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ManifestError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ManifestError::Read { path, source }
    };
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(read_err(path))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read_err(path))? {
            let entry = entry.map_err(read_err(path))?;
            let file = entry.path();
            // metadata() follows symlinks (ConfigMap volumes are symlink farms).
            if is_manifest(&file) && std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
                found.push(file);
            }
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn read_sources(paths: &[PathBuf]) -> Result<Vec<Source>, ManifestError> {
    expand(paths)?
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Source { path, text }),
            Err(source) => Err(ManifestError::Read { path, source }),
        })
        .collect()
}

// === parsing ===

/// The objects of one load, before the cross-object rules are applied.
#[derive(Default)]
struct Collected {
    services: Vec<model::Service>,
    slices: Vec<model::EndpointSlice>,
    legacy: Vec<model::EndpointSlice>,
    pods: Vec<model::Pod>,
    namespaces: Vec<model::Namespace>,
    imports: Vec<model::ServiceImport>,
    mc_slices: Vec<model::MultiClusterSlice>,
    /// Namespaces objects live in (selected or not).
    implied: BTreeSet<Box<str>>,
    /// `namespace_labels` is set: implied namespaces do not exist.
    only_written_namespaces: bool,
}

fn parse_sources(sources: &[Source], filters: Filters<'_>) -> Result<Vec<Object>, ManifestError> {
    let mut out = Collected {
        only_written_namespaces: filters.namespace_labels.is_some(),
        ..Collected::default()
    };
    for src in sources {
        for (i, doc) in serde_yaml::Deserializer::from_str(&src.text).enumerate() {
            let at = Origin {
                path: src.path.clone(),
                line_col: None,
                document: i + 1,
                item: None,
            };
            let value = Value::deserialize(doc).map_err(|e| parse_error(at.clone(), &e))?;
            let mut doc = Document {
                src,
                filters,
                out: &mut out,
            };
            doc.dispatch(value, at)?;
        }
    }
    Ok(out.finish())
}

/// A parse error at `at`, with the YAML parser's line and column when it has them.
fn parse_error(mut at: Origin, e: &serde_yaml::Error) -> ManifestError {
    let mut message = e.to_string();
    if let Some(loc) = e.location() {
        at.line_col = Some((loc.line(), loc.column()));
        message = message.replacen(
            &format!(" at line {} column {}", loc.line(), loc.column()),
            "",
            1,
        );
    }
    ManifestError::Parse { at, message }
}

/// The state needed while dispatching the documents of one file.
struct Document<'a> {
    src: &'a Source,
    filters: Filters<'a>,
    out: &'a mut Collected,
}

fn str_field<'v>(map: &'v Mapping, key: &str) -> Option<&'v str> {
    map.get(key).and_then(Value::as_str)
}

impl Document<'_> {
    fn dispatch(&mut self, value: Value, at: Origin) -> Result<(), ManifestError> {
        let Value::Mapping(mut map) = value else {
            if value.is_null() {
                return Ok(()); // an empty document (`---` at the end)
            }
            return Err(self.shape_error(at, "a document must be a Kubernetes object (a mapping)"));
        };
        let (Some(api_version), Some(kind)) =
            (str_field(&map, "apiVersion"), str_field(&map, "kind"))
        else {
            return Err(self.shape_error(at, "the object has no apiVersion or kind"));
        };
        let (api_version, kind) = (api_version.to_owned(), kind.to_owned());
        let item_kind = match kind.as_str() {
            "List" => None,
            "ServiceList" | "EndpointsList" | "PodList" | "NamespaceList" | "EndpointSliceList"
            | "ServiceImportList" => kind.strip_suffix("List"),
            _ => return self.object(map, (api_version, kind), at),
        };
        let items = match map.remove("items") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Sequence(items)) => items,
            Some(_) => return Err(self.shape_error(at, "`items` of a List must be a sequence")),
        };
        for (j, item) in items.into_iter().enumerate() {
            let at = Origin {
                item: Some(j + 1),
                ..at.clone()
            };
            let Value::Mapping(item) = item else {
                return Err(
                    self.shape_error(at, "a List item must be a Kubernetes object (a mapping)")
                );
            };
            // Items of a typed list (`ServiceList`) may omit their own kind.
            let own = (str_field(&item, "apiVersion"), str_field(&item, "kind"));
            let key = match (own, item_kind) {
                ((Some(v), Some(k)), _) => (v.to_owned(), k.to_owned()),
                ((v, k), Some(list_kind)) => (
                    v.unwrap_or(&api_version).to_owned(),
                    k.unwrap_or(list_kind).to_owned(),
                ),
                _ => return Err(self.shape_error(at, "the object has no apiVersion or kind")),
            };
            self.object(item, key, at)?;
        }
        Ok(())
    }

    fn shape_error(&self, at: Origin, message: &str) -> ManifestError {
        ManifestError::Parse {
            at,
            message: message.to_owned(),
        }
    }

    /// One object: skipped unless it is one of the five kinds DNS reads.
    fn object(
        &mut self,
        mut map: Mapping,
        (api_version, kind): (String, String),
        at: Origin,
    ) -> Result<(), ManifestError> {
        let namespaced = matches!(
            kind.as_str(),
            "Service" | "Endpoints" | "Pod" | "EndpointSlice" | "ServiceImport"
        );
        if namespaced {
            default_namespace(&mut map);
        }
        let value = Value::Mapping(map);
        let convert_err = |at: &Origin| {
            let at = at.clone();
            move |source| ManifestError::Convert { at, source }
        };
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Service") => {
                let svc: core::Service = self.typed(value, &at)?;
                self.note_namespace(&svc.metadata);
                if self.selected(&svc.metadata) {
                    self.out
                        .services
                        .push(convert::service(&svc).map_err(convert_err(&at))?);
                }
            }
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                let slice: discovery::EndpointSlice = self.typed(value, &at)?;
                self.note_namespace(&slice.metadata);
                if self.selected(&slice.metadata) {
                    let converted = convert::endpoint_slice(&slice).map_err(convert_err(&at))?;
                    self.out.slices.extend(converted);
                    let imported = convert::multicluster_slice(&slice).map_err(convert_err(&at))?;
                    self.out.mc_slices.extend(imported);
                }
            }
            ("multicluster.x-k8s.io/v1alpha1", "ServiceImport") => {
                let import: super::mcs::ServiceImport = self.typed(value, &at)?;
                self.note_namespace(&import.metadata);
                if self.selected(&import.metadata) {
                    self.out
                        .imports
                        .push(convert::service_import(&import).map_err(convert_err(&at))?);
                }
            }
            ("v1", "Endpoints") => {
                let ep: core::Endpoints = self.typed(value, &at)?;
                self.note_namespace(&ep.metadata);
                if self.selected(&ep.metadata) {
                    self.out
                        .legacy
                        .extend(convert::endpoints(&ep).map_err(convert_err(&at))?);
                }
            }
            ("v1", "Pod") => {
                let pod: core::Pod = self.typed(value, &at)?;
                self.note_namespace(&pod.metadata);
                if self.selected(&pod.metadata) {
                    self.out
                        .pods
                        .extend(convert::pod(&pod).map_err(convert_err(&at))?);
                }
            }
            ("v1", "Namespace") => {
                let ns: core::Namespace = self.typed(value, &at)?;
                let converted = convert::namespace(&ns).map_err(convert_err(&at))?;
                if matches(self.filters.namespace_labels, &ns.metadata) {
                    self.out.namespaces.push(converted);
                }
            }
            _ => {
                tracing::debug!(path = %at.path.display(), document = at.document, api_version, kind, "manifests: skipping kind")
            }
        }
        Ok(())
    }

    /// The typed object. On error, the document is parsed again straight
    /// from the text to learn the line and column (top-level documents only;
    /// errors are rare, so the second parse costs nothing in the common case).
    fn typed<T: DeserializeOwned>(&self, value: Value, at: &Origin) -> Result<T, ManifestError> {
        serde_yaml::from_value(value).map_err(|e| {
            let located = if at.item.is_none() {
                serde_yaml::Deserializer::from_str(&self.src.text)
                    .nth(at.document - 1)
                    .and_then(|doc| T::deserialize(doc).err())
                    .filter(|again| again.location().is_some())
            } else {
                None
            };
            parse_error(at.clone(), located.as_ref().unwrap_or(&e))
        })
    }

    fn selected(&self, meta: &ObjectMeta) -> bool {
        matches(self.filters.labels, meta)
    }

    fn note_namespace(&mut self, meta: &ObjectMeta) {
        if let Some(ns) = meta.namespace.as_deref() {
            self.out.implied.insert(ns.to_ascii_lowercase().into());
        }
    }
}

/// Whether `selector` (none: everything) matches the object's labels.
fn matches(selector: Option<&Selector>, meta: &ObjectMeta) -> bool {
    static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();
    selector.is_none_or(|s| s.matches(meta.labels.as_ref().unwrap_or(&NO_LABELS)))
}

/// Sets `metadata.namespace: default` when it is absent or empty, as `kubectl apply` would.
fn default_namespace(map: &mut Mapping) {
    let Some(Value::Mapping(meta)) = map.get_mut("metadata") else {
        return;
    };
    let missing = match meta.get("namespace") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if missing {
        meta.insert("namespace".into(), "default".into());
    }
}

impl Collected {
    /// Applies the cross-object rules and flattens to objects, kind by kind;
    /// a later duplicate (same kind, namespace, name) replaces an earlier one.
    fn finish(self) -> Vec<Object> {
        let Collected {
            services,
            mut slices,
            legacy,
            pods,
            mut namespaces,
            imports,
            mc_slices,
            implied,
            only_written_namespaces,
        } = self;
        let sliced: HashSet<(Box<str>, Box<str>)> = slices
            .iter()
            .map(|s| (s.namespace.clone(), s.service.clone()))
            .collect();
        slices.extend(
            legacy
                .into_iter()
                .filter(|s| !sliced.contains(&(s.namespace.clone(), s.service.clone()))),
        );
        let written: HashSet<Box<str>> = namespaces.iter().map(|n| n.name.clone()).collect();
        if !only_written_namespaces {
            namespaces.extend(
                implied
                    .into_iter()
                    .filter(|n| !written.contains(n))
                    .map(|name| model::Namespace { name }),
            );
        }
        let mut out = Vec::new();
        let mut seen: HashMap<(Kind, Box<str>, Box<str>), usize> = HashMap::new();
        let all = (namespaces.into_iter().map(Object::Namespace))
            .chain(services.into_iter().map(Object::Service))
            .chain(slices.into_iter().map(Object::EndpointSlice))
            .chain(pods.into_iter().map(Object::Pod))
            .chain(imports.into_iter().map(Object::ServiceImport))
            .chain(mc_slices.into_iter().map(Object::MultiClusterSlice));
        for object in all {
            let key = match &object {
                Object::Namespace(n) => (Kind::Namespace, Box::<str>::default(), n.name.clone()),
                Object::Service(s) => (Kind::Service, s.namespace.clone(), s.name.clone()),
                Object::EndpointSlice(s) => {
                    (Kind::EndpointSlice, s.namespace.clone(), s.name.clone())
                }
                Object::Pod(p) => (Kind::Pod, p.namespace.clone(), p.name.clone()),
                Object::ServiceImport(i) => {
                    (Kind::ServiceImport, i.namespace.clone(), i.name.clone())
                }
                Object::MultiClusterSlice(m) => (
                    Kind::MultiClusterSlice,
                    m.slice.namespace.clone(),
                    m.slice.name.clone(),
                ),
            };
            match seen.get(&key) {
                Some(&i) => out[i] = object,
                None => {
                    seen.insert(key, out.len());
                    out.push(object);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
