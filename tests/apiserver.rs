//! Self-tests of the in-process test API server, driven by the real kube client.

mod support;

use support::apiserver::ApiServer;

#[tokio::test]
async fn version_answers() {
    let server = ApiServer::start().await;
    let v = server.client().apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
}
