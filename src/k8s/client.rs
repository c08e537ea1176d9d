//! Building the one kube-rs `Client` all watchers share, from the kubernetes
//! plugin's options (CoreDNS's: `endpoint`, `kubeconfig`, `tls`).
//!
//! - `kubeconfig PATH [CONTEXT]`: that file (and context), whatever else is set.
//! - `endpoint http://...`: plain HTTP, no authentication (tests, local demos).
//! - `endpoint https://...` with `tls CERT KEY CACERT`: client-certificate auth.
//! - `endpoint https://...` alone: that URL with the in-cluster service-account
//!   credentials when present.
//! - nothing: in-cluster service account, else `$KUBECONFIG` / `~/.kube/config`.
//!
//! `apiserver_qps`, `apiserver_burst` and `apiserver_max_inflight` become a
//! [`LimitLayer`] on the client's service stack (see [`limit`](super::limit)).

use std::path::{Path, PathBuf};

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::limit::{ApiLimits, LimitLayer};

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No in-cluster or default configuration.
    #[error("no Kubernetes API configuration found (not in a cluster, no kubeconfig): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The endpoint is not a URL.
    #[error("endpoint '{url}': {message}")]
    Endpoint {
        /// The URL as written.
        url: String,
        /// Why it is unusable.
        message: String,
    },
    /// The HTTP client could not be created.
    #[error("creating the API client: {0}")]
    Client(#[source] kube::Error),
}

/// Where to connect, as the Corefile says.
#[derive(Clone, Debug, Default)]
pub struct ApiAccess {
    /// `endpoint URL`.
    pub endpoint: Option<String>,
    /// `kubeconfig PATH [CONTEXT]`.
    pub kubeconfig: Option<(PathBuf, Option<String>)>,
    /// `tls CERT KEY CACERT`.
    pub tls: Option<[PathBuf; 3]>,
    /// `apiserver_qps`, `apiserver_burst`, `apiserver_max_inflight`.
    pub limits: ApiLimits,
}

/// Build the client configuration.
pub async fn config(access: &ApiAccess) -> Result<Config, ClientError> {
    if let Some((path, context)) = &access.kubeconfig {
        return from_kubeconfig_file(path, context.clone()).await;
    }
    let Some(url) = &access.endpoint else {
        return Config::infer().await.map_err(ClientError::Infer);
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ClientError::Endpoint {
            url: url.clone(),
            message: e.to_string(),
        })?;
    if uri.scheme_str() == Some("http") {
        return Ok(Config::new(uri));
    }
    if let Some([cert, key, ca]) = &access.tls {
        return from_kubeconfig(tls_kubeconfig(url, cert, key, ca), None, Path::new("<tls>")).await;
    }
    match Config::incluster() {
        Ok(mut c) => {
            c.cluster_url = uri;
            Ok(c)
        }
        Err(_) => Ok(Config::new(uri)),
    }
}

/// Build the shared client, with the access's limits applied to every request.
pub async fn client(access: &ApiAccess) -> Result<Client, ClientError> {
    let builder = ClientBuilder::try_from(config(access).await?).map_err(ClientError::Client)?;
    if !access.limits.is_set() {
        return Ok(builder.build());
    }
    Ok(builder.with_layer(&LimitLayer::new(access.limits)).build())
}

async fn from_kubeconfig_file(path: &Path, context: Option<String>) -> Result<Config, ClientError> {
    let kc = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    from_kubeconfig(kc, context, path).await
}

async fn from_kubeconfig(
    kc: Kubeconfig,
    context: Option<String>,
    path: &Path,
) -> Result<Config, ClientError> {
    let opts = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|source| ClientError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
}

/// A one-context kubeconfig for `endpoint` + `tls CERT KEY CACERT`.
fn tls_kubeconfig(url: &str, cert: &Path, key: &Path, ca: &Path) -> Kubeconfig {
    let p = |p: &Path| p.to_string_lossy().into_owned();
    let value = serde_json::json!({
        "clusters": [{"name": "corefile", "cluster": {"server": url, "certificate-authority": p(ca)}}],
        "users": [{"name": "corefile", "user": {"client-certificate": p(cert), "client-key": p(key)}}],
        "contexts": [{"name": "corefile", "context": {"cluster": "corefile", "user": "corefile"}}],
        "current-context": "corefile",
    });
    // The value above matches the Kubeconfig schema by construction.
    serde_json::from_value(value).unwrap_or_default()
}
