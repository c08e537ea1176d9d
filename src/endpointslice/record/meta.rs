//! What the slice and Endpoints records share: the metadata a replace must
//! carry (generateName, resourceVersion for optimistic concurrency, labels, annotations,
//! owners, finalizers — not creationTimestamp or generation, which the API
//! server keeps on a PUT without them), and a compact `targetRef`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::{Labels, Pair, Shared, Uid, label};

fn map(pairs: &[Pair]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An ownerReference with its strings shared (our slices' owner is their
/// Service: `v1`, `Service`, its name — also in the slices' labels).
#[derive(Clone, Debug, PartialEq)]
struct Owner {
    api_version: Arc<str>,
    kind: Arc<str>,
    name: Arc<str>,
    uid: Uid,
    controller: Option<bool>,
    block_owner_deletion: Option<bool>,
}

impl Owner {
    fn new(o: &OwnerReference, shared: &mut Shared) -> Owner {
        Owner {
            api_version: shared.strings.intern(&o.api_version),
            kind: shared.strings.intern(&o.kind),
            name: shared.strings.intern(&o.name),
            uid: Uid::new(&o.uid),
            controller: o.controller,
            block_owner_deletion: o.block_owner_deletion,
        }
    }

    fn to_api(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.to_string(),
            kind: self.kind.to_string(),
            name: self.name.to_string(),
            uid: self.uid.to_string(),
            controller: self.controller,
            block_owner_deletion: self.block_owner_deletion,
        }
    }
}

/// The cached part of an object's metadata; see the module doc. Name and
/// namespace are the cache's key.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    generate_name: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    uid: Option<Uid>,
    labels: Option<Labels>,
    annotations: Option<Labels>,
    owners: Option<Box<[Owner]>>,
    finalizers: Option<Box<[String]>>,
}

impl Meta {
    /// The record of `meta`.
    pub fn new(meta: &ObjectMeta, shared: &mut Shared) -> Meta {
        Meta {
            generate_name: meta.generate_name.as_deref().map(Into::into),
            resource_version: meta.resource_version.as_deref().map(Into::into),
            uid: meta.uid.as_deref().map(Uid::new),
            labels: meta.labels.as_ref().map(|l| shared.labels(l)),
            annotations: meta.annotations.as_ref().map(|a| shared.labels(a)),
            owners: meta
                .owner_references
                .as_ref()
                .map(|o| o.iter().map(|o| Owner::new(o, shared)).collect()),
            finalizers: meta.finalizers.as_deref().map(Into::into),
        }
    }

    /// The metadata of `namespace/name` this record was made from (minus
    /// what a replace need not carry).
    pub fn to_api(&self, namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            generate_name: self.generate_name.as_deref().map(str::to_owned),
            resource_version: self.resource_version.as_deref().map(str::to_owned),
            uid: self.uid.as_ref().map(Uid::to_string),
            labels: self.labels.as_deref().map(map),
            annotations: self.annotations.as_deref().map(map),
            owner_references: self
                .owners
                .as_deref()
                .map(|o| o.iter().map(Owner::to_api).collect()),
            finalizers: self.finalizers.as_deref().map(<[_]>::to_vec),
            ..ObjectMeta::default()
        }
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        label(self.labels.as_deref()?, key)
    }
}

/// A `targetRef`: the usual reference to a pod of the object's own
/// namespace in two fields, any other as it is.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// No `targetRef`.
    None,
    /// `{kind: Pod, namespace: <the object's>, name, uid}` and nothing else.
    Pod {
        /// `name`.
        name: Box<str>,
        /// `uid`.
        uid: Uid,
    },
    /// Anything else.
    Other(Box<ObjectReference>),
}

impl Target {
    /// The record of a `targetRef` in an object of `namespace`.
    pub fn new(r: Option<&ObjectReference>, namespace: &str) -> Target {
        let Some(r) = r else { return Target::None };
        match r {
            ObjectReference {
                kind: Some(kind),
                namespace: Some(ns),
                name: Some(name),
                uid: Some(uid),
                api_version: None,
                field_path: None,
                resource_version: None,
            } if kind == "Pod" && ns == namespace => Target::Pod {
                name: name.as_str().into(),
                uid: Uid::new(uid),
            },
            other => Target::Other(Box::new(other.clone())),
        }
    }

    /// The `targetRef` of an object of `namespace`.
    pub fn to_api(&self, namespace: &str) -> Option<ObjectReference> {
        match self {
            Target::None => None,
            Target::Pod { name, uid } => Some(ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_string()),
                uid: Some(uid.to_string()),
                ..ObjectReference::default()
            }),
            Target::Other(r) => Some((**r).clone()),
        }
    }
}

/// An address as written: an IP that prints back identically in 17 bytes,
/// anything else as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A canonical IP.
    Ip(std::net::IpAddr),
    /// Anything else.
    Text(Box<str>),
}

impl Addr {
    /// The record of `s`.
    pub fn new(s: &str) -> Addr {
        match s.parse::<std::net::IpAddr>() {
            Ok(ip) if ip.to_string() == s => Addr::Ip(ip),
            _ => Addr::Text(s.into()),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Ip(ip) => ip.fmt(f),
            Addr::Text(s) => f.write_str(s),
        }
    }
}

/// An optional shared string (node names, zones).
pub fn shared_str(shared: &mut Shared, s: Option<&String>) -> Option<Arc<str>> {
    shared.string(s.map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn metadata_keeps_what_a_replace_carries() {
        let mut shared = Shared::default();
        let full = ObjectMeta {
            name: Some("web-abc".into()),
            generate_name: Some("web-".into()),
            namespace: Some("default".into()),
            resource_version: Some("42".into()),
            uid: Some("5f0c3a9e-1b2d-4c5e-8f70-123456789abc".into()),
            labels: Some(BTreeMap::from([("a".into(), "1".into())])),
            annotations: Some(BTreeMap::from([("n".into(), "x".into())])),
            owner_references: Some(vec![OwnerReference {
                kind: "Service".into(),
                name: "web".into(),
                uid: "u".into(),
                ..OwnerReference::default()
            }]),
            finalizers: Some(vec!["f".into()]),
            generation: Some(3),
            ..ObjectMeta::default()
        };
        let rec = Meta::new(&full, &mut shared);
        let back = rec.to_api("default", "web-abc");
        assert_eq!(
            back,
            ObjectMeta {
                generation: None,
                ..full.clone()
            }
        );
        assert_eq!(
            (rec.resource_version(), rec.label("a")),
            (Some("42"), Some("1"))
        );
        // Absent and empty stay distinct.
        let bare = ObjectMeta {
            name: Some("x".into()),
            namespace: Some("ns".into()),
            labels: Some(BTreeMap::new()),
            ..ObjectMeta::default()
        };
        assert_eq!(Meta::new(&bare, &mut shared).to_api("ns", "x"), bare);
    }

    #[test]
    fn target_refs_round_trip() {
        let pod = |ns: &str| ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(ns.into()),
            name: Some("web-1".into()),
            uid: Some("uid-1".into()),
            ..ObjectReference::default()
        };
        let with_rv = ObjectReference {
            resource_version: Some("7".into()),
            ..pod("default")
        };
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..ObjectReference::default()
        };
        let cases = [
            (None, false),
            (Some(pod("default")), true),
            (Some(pod("other")), false),
            (Some(with_rv), false),
            (Some(node), false),
        ];
        for (r, compact) in cases {
            let t = Target::new(r.as_ref(), "default");
            assert_eq!(matches!(t, Target::Pod { .. }), compact, "{r:?}");
            assert_eq!(t.to_api("default"), r);
        }
    }

    #[test]
    fn addresses_round_trip() {
        for (s, ip) in [
            ("10.0.0.1", true),
            ("fd00::1", true),
            ("FD00::1", false),
            ("010.0.0.1", false),
            ("db.example.com", false),
        ] {
            let a = Addr::new(s);
            assert_eq!(matches!(a, Addr::Ip(_)), ip, "{s}");
            assert_eq!(a.to_string(), s);
        }
    }
}
