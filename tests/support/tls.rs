//! TLS for the test API server: a throw-away CA and a server certificate for
//! 127.0.0.1 / localhost, generated at start.
//!
//! Invariant: the CA handed to clients (kubeconfig, `ApiServer::client`) is the
//! one that signed the certificate the server presents, so verification succeeds
//! only against this server.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Server-side TLS material.
#[derive(Clone)]
pub struct Tls {
    /// Accepts connections with the server certificate.
    pub acceptor: TlsAcceptor,
    /// The CA certificate in PEM, for kubeconfigs.
    pub ca_pem: String,
    /// The CA certificate in DER, for `kube::Config::root_cert`.
    pub ca_der: Vec<u8>,
}

impl Tls {
    /// Generate a CA and a server certificate for loopback.
    pub fn generate() -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let err = |e: rcgen::Error| e.to_string();

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "clusterdns-test-ca");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err)?)
            .map_err(err)?;

        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let server_params = CertificateParams::new(names).map_err(err)?;
        let server_key = KeyPair::generate().map_err(err)?;
        let server_cert = server_params.signed_by(&server_key, &ca).map_err(err)?;

        let chain = vec![server_cert.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let der: &CertificateDer<'static> = ca.der();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: ca.pem(),
            ca_der: der.to_vec(),
        })
    }
}
