//! Fuzz target: manifest YAML → the `manifests` source's parser
//! ([`manifests::parse_text`], no files) → the index.
//!
//! Properties: no panic; an error names the file it was given; a load that
//! succeeds holds each (kind, namespace, name) once, a Namespace for every
//! namespace an object lives in, lower-case names, and, once in the index,
//! exactly as many Services as it listed; every name its objects make looks
//! up and encodes strictly (as in [`super::api_object`]).

use std::collections::HashSet;
use std::path::Path;

use crate::index::{ClusterIndex, Kind, Object};
use crate::watch::manifests::{self, ManifestError};

use super::api_object;

/// The path the fuzzed text pretends to come from.
pub const PATH: &str = "/fuzz/cluster.yaml";

/// At most this many objects are looked up per input (the rest are only indexed),
/// so one large input does not stall the fuzzer.
const MAX_LOOKED_UP: usize = 64;

/// What came of one input.
#[derive(Debug)]
pub enum Outcome {
    /// Not UTF-8 (the source reads files as text and refuses it the same way).
    NotText,
    /// Refused, with this error.
    Refused(ManifestError),
    /// Loaded these objects.
    Loaded(Vec<Object>),
}

/// Parses `data` as one manifest file and indexes what it holds.
pub fn run(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    let objects = match manifests::parse_text(Path::new(PATH), text, manifests::Filters::default())
    {
        Ok(objects) => objects,
        Err(e) => {
            assert_eq!(
                e.path(),
                Path::new(PATH),
                "the error names another file: {e}"
            );
            assert!(!e.to_string().trim().is_empty());
            return Outcome::Refused(e);
        }
    };
    let mut keys = HashSet::new();
    let mut namespaces = HashSet::new();
    let mut used = HashSet::new();
    for o in &objects {
        let key = match o {
            Object::Namespace(n) => {
                namespaces.insert(&*n.name);
                (Kind::Namespace, "", &*n.name)
            }
            Object::Service(s) => (Kind::Service, &*s.namespace, &*s.name),
            Object::EndpointSlice(s) => (Kind::EndpointSlice, &*s.namespace, &*s.name),
            Object::Pod(p) => (Kind::Pod, &*p.namespace, &*p.name),
            Object::ServiceImport(i) => (Kind::ServiceImport, &*i.namespace, &*i.name),
            Object::MultiClusterSlice(m) => {
                (Kind::MultiClusterSlice, &*m.slice.namespace, &*m.slice.name)
            }
        };
        assert!(keys.insert(key), "{key:?} loaded twice");
        if !key.1.is_empty() {
            used.insert(key.1);
        }
        for name in [key.1, key.2] {
            assert_eq!(name, name.to_ascii_lowercase(), "a name is not lower-case");
        }
    }
    for ns in used {
        assert!(
            namespaces.contains(ns),
            "objects in namespace {ns} but no Namespace for it"
        );
    }
    let services = objects.iter().filter(|o| o.kind() == Kind::Service).count();
    let mut index = ClusterIndex::default();
    index.apply(super::cluster::reset_all(objects.clone()));
    assert_eq!(
        index.service_count(),
        services,
        "services lost or doubled in the index"
    );
    for o in objects.iter().take(MAX_LOOKED_UP) {
        api_object::look_up_all(&index, o);
    }
    Outcome::Loaded(objects)
}
