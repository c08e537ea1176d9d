//! `tls`: the certificate of a `tls://` (DNS over TLS) or `https://` (DNS
//! over HTTPS) server block (CoreDNS's `tls` plugin).
//!
//! # Syntax
//! ```text
//! tls CERT KEY [CA] {
//!     client_auth nocert|verify_if_given|require_and_verify
//! }
//! ```
//! CERT is a PEM file with the certificate (and its chain), KEY its private
//! key; paths are relative to the Corefile's directory. CA verifies client
//! certificates when `client_auth` asks for them (default `nocert`, as
//! CoreDNS; without CA the system's roots verify them).
//!
//! Not a chain plugin: the listener of a `tls://`/`https://` block presents
//! the certificate. The files are read when the configuration is built, so
//! a reload picks up a renewed certificate (and a broken one fails the
//! reload, which keeps the running configuration). In a `dns://` block it
//! does nothing, as in CoreDNS (a warning says so at start).
//!
//! Refused: `client_auth request` and `require` (Go's "ask for a certificate
//! but do not verify it"; we never accept an unverified client certificate).
//!
//! # Examples
//! ```text
//! tls://.:853 {
//!     tls /etc/coredns/tls.crt /etc/coredns/tls.key
//!     kubernetes cluster.local
//! }
//! ```

use std::path::PathBuf;

use crate::corefile::{CorefileError, Dispenser, Token};
use crate::tls::ClientAuth;

/// The validated `tls` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Verifies client certificates (the system's roots when `None`).
    pub ca: Option<PathBuf>,
    /// `client_auth`.
    pub client_auth: ClientAuth,
    /// Where the directive was written (`file:line:col`).
    pub at: String,
}

impl ServerTls {
    /// The server configuration these files make, for `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> anyhow::Result<rustls::ServerConfig> {
        crate::tls::server_config(
            &self.cert,
            &self.key,
            self.ca.as_deref(),
            self.client_auth,
            alpn,
        )
        .map_err(|e| anyhow::anyhow!("{}: tls: {e}", self.at))
    }
}

/// Parse `tls CERT KEY [CA] { client_auth ... }`.
pub fn parse(d: &mut Dispenser<'_>) -> Result<ServerTls, CorefileError> {
    let cert = d.expect_arg("CERT")?;
    let key = d.expect_arg("KEY")?;
    let ca = d.next_arg();
    d.expect_end()?;
    let mut tls = ServerTls {
        cert: path(cert),
        key: path(key),
        ca: ca.map(path),
        client_auth: ClientAuth::NoCert,
        at: d.directive().name.pos.to_string(),
    };
    for line in d.block() {
        let mut sd = d.sub(line);
        if line.name.as_str() != "client_auth" {
            return Err(d.unknown_property(line));
        }
        let t = sd.expect_arg("nocert|verify_if_given|require_and_verify")?;
        tls.client_auth = match t.as_str() {
            "nocert" => ClientAuth::NoCert,
            "verify_if_given" => ClientAuth::VerifyIfGiven,
            "require_and_verify" => ClientAuth::RequireAndVerify,
            "request" | "require" => {
                return Err(sd.err_at(
                    t,
                    format!(
                        "client_auth {} is not supported by clusterdns: it accepts client \
                         certificates without verifying them; use verify_if_given or \
                         require_and_verify",
                        t.text
                    ),
                ));
            }
            other => {
                return Err(sd.err_at(
                    t,
                    format!(
                        "unknown client_auth '{other}' (nocert, verify_if_given, \
                         require_and_verify)"
                    ),
                ));
            }
        };
        sd.expect_end()?;
    }
    Ok(tls)
}

/// A file argument, relative to the Corefile's directory.
fn path(t: &Token) -> PathBuf {
    let p = PathBuf::from(t.as_str());
    match (p.is_absolute(), t.pos.file.parent()) {
        (false, Some(dir)) => dir.join(p),
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::corefile::{MemFs, parse_str};

    fn parse_text(directive: &str) -> Result<ServerTls, String> {
        let text = format!("tls://.:853 {{\n{directive}\n}}\n");
        let cf = parse_str(
            &text,
            Path::new("/etc/coredns/Corefile"),
            &|_| None,
            &MemFs::new(),
        )
        .map_err(|e| e.to_string())?;
        parse(&mut Dispenser::new(&cf.blocks[0].directives[0])).map_err(|e| e.to_string())
    }

    #[test]
    fn files_are_relative_to_the_corefile_and_client_auth_defaults_to_nocert() {
        let dir = Path::new("/etc/coredns");
        let cases: &[(&str, ServerTls)] = &[
            (
                "tls cert.pem key.pem",
                ServerTls {
                    cert: dir.join("cert.pem"),
                    key: dir.join("key.pem"),
                    ca: None,
                    client_auth: ClientAuth::NoCert,
                    at: "/etc/coredns/Corefile:2:1".into(),
                },
            ),
            (
                "tls /tls/c.pem k.pem ca.pem {\nclient_auth require_and_verify\n}",
                ServerTls {
                    cert: "/tls/c.pem".into(),
                    key: dir.join("k.pem"),
                    ca: Some(dir.join("ca.pem")),
                    client_auth: ClientAuth::RequireAndVerify,
                    at: "/etc/coredns/Corefile:2:1".into(),
                },
            ),
            (
                "tls c k {\nclient_auth verify_if_given\n}",
                ServerTls {
                    cert: dir.join("c"),
                    key: dir.join("k"),
                    ca: None,
                    client_auth: ClientAuth::VerifyIfGiven,
                    at: "/etc/coredns/Corefile:2:1".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_text(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn bad_lines_name_file_line_and_why() {
        let cases: &[(&str, &str)] = &[
            ("tls", "Corefile:2:1: tls: missing argument: CERT"),
            ("tls c.pem", "Corefile:2:5: tls: missing argument: KEY"),
            (
                "tls c k ca extra",
                "Corefile:2:12: tls: unexpected argument 'extra'",
            ),
            (
                "tls c k {\nclient_auth require\n}",
                "Corefile:3:13: tls: client_auth: client_auth require is not supported by clusterdns",
            ),
            (
                "tls c k {\nclient_auth maybe\n}",
                "Corefile:3:13: tls: client_auth: unknown client_auth 'maybe'",
            ),
            (
                "tls c k {\nclient_auth\n}",
                "Corefile:3:1: tls: client_auth: missing argument",
            ),
            (
                "tls c k {\nciphers x\n}",
                "Corefile:3:1: tls: unknown property 'ciphers'",
            ),
        ];
        for (text, want) in cases {
            let e = parse_text(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
