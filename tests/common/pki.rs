//! A throw-away PKI for TLS tests: a CA and one certificate it signed, for
//! the names (DNS names or IP addresses) asked, written as PEM files
//! `ca.pem`, `cert.pem` (leaf then CA) and `key.pem` in a directory.
//!
//! Shared by the library's unit tests (`src/tls.rs` includes this file) and
//! the integration tests (`#[path = "common/pki.rs"] mod pki;`).

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// The files of one generated CA and certificate.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The certificate chain (leaf, then the CA).
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8).
    pub key: PathBuf,
}

impl Pki {
    /// Generate a CA and a certificate for `names` into `dir` (created).
    pub fn generate(dir: &Path, names: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("pki dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "clusterdns-test-ca");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&leaf_key, &ca)
            .expect("leaf cert");
        let pki = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&pki.ca, ca.pem()).expect("write ca");
        std::fs::write(&pki.cert, format!("{}{}", leaf.pem(), ca.pem())).expect("write cert");
        std::fs::write(&pki.key, leaf_key.serialize_pem()).expect("write key");
        pki
    }
}
