//! TLS on both sides: the proxy listener serving HTTPS (HTTP/2 by ALPN), and the upstream
//! reached over HTTPS with a private CA from `server.upstream_ca_file`.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::*;

#[tokio::test]
async fn https_listener_and_https_upstream_with_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let acceptor = tollgate::server::tls_acceptor(&cert_path, &key_path).unwrap();
    let mock = Mock::start_with_tls(Some(acceptor), |_| Reply::json(200, r#"{"ok":true}"#)).await;
    let providers = format!(
        "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-up\"\n",
        mock.tls_url()
    );
    let server_extra = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\nupstream_ca_file = \"{}\"",
        cert_path.display(),
        key_path.display(),
        cert_path.display()
    );
    let app = spawn_app_with_tls(mock, &server_extra, &providers).await;
    let s = app.seed().await;

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut cert.cert.pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let req = Request::post(format!("https://localhost:{}/v1/chat/completions", app.proxy.port()))
        .header("authorization", format!("Bearer {}", s.key))
        .body(Full::new(Bytes::from_static(br#"{"model":"gpt-4o"}"#)))
        .unwrap();
    let response = client.request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2, "ALPN should pick h2 on the listener");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"ok":true}"#);
    let seen = app.mock.last();
    assert_eq!(seen.version, http::Version::HTTP_2, "the upstream offered h2 and tollgate used it");
    assert_eq!(seen.headers["authorization"], "Bearer sk-up");
}
