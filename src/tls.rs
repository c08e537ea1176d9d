//! TLS settings from PEM files, for the two places DNS speaks TLS: `forward`
//! to `tls://` upstreams (a client) and `tls://`/`https://` server blocks (a
//! server). One loader, so that both read certificates, keys and CAs the same
//! way and fail with the same messages (the file and what was wrong with it).
//!
//! Invariant: verification is never switched off. A client verifies the
//! upstream's certificate against the given CA, or the system's roots when
//! none is given; a server that is given a CA verifies client certificates
//! against it when `client_auth` asks for it.
//!
//! Files are read when a configuration is built (start and every reload), so
//! a reload picks up renewed certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// rustls refused the material (a key that does not match, a bad CA).
    #[error("{0}")]
    Rustls(String),
}

/// How a server treats client certificates (CoreDNS's `tls { client_auth }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for (CoreDNS's default).
    #[default]
    NoCert,
    /// A client certificate, if sent, must verify against the CA.
    VerifyIfGiven,
    /// A client certificate is required and must verify against the CA.
    RequireAndVerify,
}

/// The process's crypto provider (ring), named explicitly: kube pulls rustls
/// with other providers, so the crate-feature default can be ambiguous.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_err(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// Every certificate in a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_err(path, e))
}

/// A root store of the CA file's certificates, or of the system's roots.
pub fn roots(ca: Option<&Path>) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path)? {
                store
                    .add(cert)
                    .map_err(|e| file_err(path, format!("not a usable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A broken system certificate is skipped, as Go's pool does.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(Error::Rustls(
                    "no system CA certificates found; give the CA file (tls CERT KEY CA or tls CA)"
                        .into(),
                ));
            }
        }
    }
    Ok(store)
}

/// A client configuration: the server verified against `ca` (system roots
/// when `None`), and `cert`/`key` presented when given.
pub fn client_config(
    cert_key: Option<(&Path, &Path)>,
    ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Rustls(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let mut config = match cert_key {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| Error::Rustls(format!("{}: {e}", key.display())))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A server configuration presenting `cert` (with its chain) and `key`;
/// client certificates checked against `ca` as `auth` says.
pub fn server_config(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<ServerConfig, Error> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Rustls(e.to_string()))?;
    let builder = match auth {
        ClientAuth::NoCert => builder.with_no_client_auth(),
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider());
            let verifier = if auth == ClientAuth::VerifyIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| Error::Rustls(format!("client CA: {e}")))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(|e| Error::Rustls(format!("{} and {}: {e}", cert.display(), key.display())))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The name a client checks the server's certificate against: `name` when
/// given (`tls_servername`), else the address itself (an IP SAN).
pub fn server_name(name: Option<&str>, ip: std::net::IpAddr) -> Result<ServerName<'static>, Error> {
    match name {
        Some(n) => ServerName::try_from(n.to_string())
            .map_err(|e| Error::Rustls(format!("server name '{n}': {e}"))),
        None => Ok(ServerName::IpAddress(ip.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_the_file() {
        let e = certificates(Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/cert.pem: "), "{e}");
    }

    #[test]
    fn a_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "not pem at all\n").unwrap();
        let e = certificates(&p).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
        assert!(private_key(&p).is_err());
    }

    #[test]
    fn a_server_and_a_client_config_build_from_generated_files() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::tls::testing::Pki::generate(dir.path(), &["dns.example"]);
        let s = server_config(&pki.cert, &pki.key, None, ClientAuth::NoCert, &[b"dot"]).unwrap();
        assert_eq!(s.alpn_protocols, vec![b"dot".to_vec()]);
        let c = client_config(None, Some(&pki.ca), &[]).unwrap();
        assert!(c.alpn_protocols.is_empty());
        // The key of another certificate does not match.
        let other = crate::tls::testing::Pki::generate(&dir.path().join("b"), &["x"]);
        let e = server_config(&pki.cert, &other.key, None, ClientAuth::NoCert, &[]).unwrap_err();
        assert!(e.to_string().contains("key.pem"), "{e}");
    }

    #[test]
    fn client_auth_needs_a_usable_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::tls::testing::Pki::generate(dir.path(), &["dns.example"]);
        let auth = ClientAuth::RequireAndVerify;
        assert!(server_config(&pki.cert, &pki.key, Some(&pki.ca), auth, &[]).is_ok());
        let e = server_config(&pki.cert, &pki.key, Some(&pki.key), auth, &[]).unwrap_err();
        assert!(e.to_string().contains("key.pem"), "{e}");
    }

    #[test]
    fn the_server_name_is_the_address_unless_given() {
        let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            server_name(None, ip).unwrap(),
            ServerName::IpAddress(ip.into())
        );
        assert_eq!(
            server_name(Some("dns.example"), ip).unwrap(),
            ServerName::try_from("dns.example").unwrap()
        );
        assert!(server_name(Some("bad name!"), ip).is_err());
    }
}

#[cfg(test)]
#[path = "../tests/common/pki.rs"]
pub(crate) mod testing;
