//! The manifests source (being written).
