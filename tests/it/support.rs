//! Test harness: an in-process hyper mock upstream on port 0 with scripted, chunked
//! replies; `spawn_app` running tollgate against it on a fresh SQLite database; and an
//! HTTP/1.1 or HTTP/2 client.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

/// One step of a scripted reply body.
#[derive(Clone)]
pub enum Step {
    Data(Bytes),
    Sleep(Duration),
    /// Waits until the test signals (to prove the client already holds earlier bytes).
    WaitFor(Arc<Notify>),
    /// Signals the test that the mock got this far.
    Signal(Arc<Notify>),
}

/// A scripted upstream reply.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub steps: Vec<Step>,
    /// Wait this long before sending the response head.
    pub head_delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            steps: vec![Step::Data(body.into())],
            head_delay: Duration::ZERO,
        }
    }

    pub fn sse(steps: Vec<Step>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            steps,
            head_delay: Duration::ZERO,
        }
    }
}

/// What the mock saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// The in-process upstream.
pub struct Mock {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Mock {
    /// Starts a mock answering every request with `handler`'s reply.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Mock {
        Mock::start_with_tls(None, handler).await
    }

    /// Like [`Mock::start`], serving HTTPS (h2 and http/1.1 by ALPN) when given an acceptor.
    pub async fn start_with_tls(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                // A reply's head and body go out as separate writes: without this, Nagle
                // holds the body for tollgate's delayed ACK (40 ms a request).
                let _ = stream.set_nodelay(true);
                let handler = Arc::clone(&handler);
                let seen = Arc::clone(&seen2);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handler = Arc::clone(&handler);
                        let seen = Arc::clone(&seen);
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                            let record = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                version: parts.version,
                                headers: parts.headers,
                                body,
                            };
                            let reply = handler(&record);
                            seen.lock().unwrap().push(record);
                            Ok::<_, std::convert::Infallible>(respond(reply).await)
                        }
                    });
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Mock { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The HTTPS URL by host name, matching the test certificate.
    pub fn tls_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.requests().pop().expect("the mock saw no request")
    }
}

/// A body fed from a channel, so the mock can pace its chunks.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

async fn respond(reply: Reply) -> Response<ChannelBody> {
    tokio::time::sleep(reply.head_delay).await;
    let (tx, rx) = mpsc::channel(16);
    let mut response = Response::new(ChannelBody(rx));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (k, v) in &reply.headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    tokio::spawn(async move {
        for step in reply.steps {
            match step {
                Step::Data(b) => {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::WaitFor(n) => n.notified().await,
                Step::Signal(n) => n.notify_one(),
            }
        }
    });
    response
}

/// A running tollgate with its mock upstream and a temp database.
pub struct TestApp {
    pub running: Option<tollgate::app::Running>,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub mock: Mock,
    pub _dir: tempfile::TempDir,
    config_text: String,
}

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const OPENAI_KEY: &str = "sk-upstream-openai";
pub const ANTHROPIC_KEY: &str = "sk-ant-upstream";
pub const GEMINI_KEY: &str = "gm-upstream";

/// Starts tollgate in front of `mock` with every provider pointing at it; `extra` is
/// appended to the config (more providers, overrides).
pub async fn spawn_app_with(mock: Mock, extra: &str) -> TestApp {
    spawn_app_with_server_extra_and(mock, "", extra).await
}

/// A tollgate with extra `[server]` lines (TLS) and only the given providers.
pub async fn spawn_app_with_tls(mock: Mock, server_extra: &str, providers: &str) -> TestApp {
    start_app(mock, server_extra, providers).await
}

/// A tollgate whose only providers are the given TOML (`MOCK` is replaced by the mock's URL).
pub async fn spawn_app_with_providers(mock: Mock, providers: &str) -> TestApp {
    let providers = providers.replace("MOCK", &mock.url());
    start_app(mock, "", &providers).await
}

/// Like [`spawn_app_with`], with extra lines inside `[server]`.
pub async fn spawn_app_with_server_extra(mock: Mock, server_extra: &str) -> TestApp {
    spawn_app_with_server_extra_and(mock, server_extra, "").await
}

async fn spawn_app_with_server_extra_and(mock: Mock, server_extra: &str, extra: &str) -> TestApp {
    let url = mock.url();
    let providers = format!(
        r#"
[[providers]]
name = "openai"
kind = "openai"
base_url = "{url}"
api_key = "{OPENAI_KEY}"
[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "{url}"
api_key = "{ANTHROPIC_KEY}"
[[providers]]
name = "gemini"
kind = "gemini"
base_url = "{url}"
api_key = "{GEMINI_KEY}"
[[providers]]
name = "azure"
kind = "openai"
base_url = "{url}/openai/deployments/gpt4o?api-version=2024-10-21"
api_key = "az-upstream"
auth_header = "api-key"
{extra}
"#
    );
    start_app(mock, server_extra, &providers).await
}

async fn start_app(mock: Mock, server_extra: &str, providers: &str) -> TestApp {
    let clock = Arc::new(tollgate::budget::SystemClock);
    start_app_with_clock(mock, server_extra, providers, clock, "127.0.0.1:0").await
}

/// The standard providers, the admin API listening on `admin_listen` (with the token).
pub async fn spawn_app_with_admin_listen(mock: Mock, admin_listen: &str) -> TestApp {
    let providers = format!(
        "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{OPENAI_KEY}\"\n",
        mock.url()
    );
    let clock = Arc::new(tollgate::budget::SystemClock);
    start_app_with_clock(mock, "", &providers, clock, admin_listen).await
}

/// The standard providers and a given clock (budget windows).
pub async fn spawn_app_with_clock(mock: Mock, clock: Arc<dyn tollgate::budget::Clock>) -> TestApp {
    let url = mock.url();
    let providers = format!(
        "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"{url}\"\napi_key = \"{OPENAI_KEY}\"\n\
         [[providers]]\nname = \"anthropic\"\nkind = \"anthropic\"\nbase_url = \"{url}\"\napi_key = \"{ANTHROPIC_KEY}\"\n"
    );
    start_app_with_clock(mock, "", &providers, clock, "127.0.0.1:0").await
}

async fn start_app_with_clock(
    mock: Mock,
    server_extra: &str,
    providers: &str,
    clock: Arc<dyn tollgate::budget::Clock>,
    admin_listen: &str,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tollgate.db");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
connect_timeout_ms = 2000
first_byte_timeout_ms = 3000
{server_extra}
[admin]
listen = "{admin_listen}"
token = "{ADMIN_TOKEN}"
[database]
url = "sqlite://{db}"
[log]
filter = "warn"
[alerts]
retry_base_ms = 20
max_attempts = 4
webhook_timeout_ms = 2000
{providers}
"#,
        db = db.display(),
    );
    let config = tollgate::config::Config::from_toml_with_env(&text, &|_| None).unwrap();
    let running = tollgate::app::start_with_clock(config, clock).await.unwrap();
    TestApp {
        proxy: running.proxy_addr,
        admin: running.admin_addr,
        running: Some(running),
        mock,
        _dir: dir,
        config_text: text,
    }
}

pub async fn spawn_app(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> TestApp {
    spawn_app_with(Mock::start(handler).await, "").await
}

/// A response read to the end.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

pub type TestClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> TestClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// Sends a request and reads the whole response.
pub async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> Got {
    let response = client.request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got { status: parts.status, headers: parts.headers, body }
}

impl TestApp {
    /// The SQLite URL of this app's database (for CLI tests).
    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self._dir.path().join("tollgate.db").display())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    /// Calls the admin API with the token.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Got {
        admin_at(self.admin, method, path, body).await
    }

    /// Creates organization, project, user and key; returns (ids, plaintext key).
    pub async fn seed(&self) -> Seeded {
        seed_at(self.admin).await
    }

    /// Stops this tollgate and starts a new one on the same database and config.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let config = tollgate::config::Config::from_toml_with_env(&self.config_text, &|_| None).unwrap();
        let running = tollgate::app::start(config).await.unwrap();
        self.proxy = running.proxy_addr;
        self.admin = running.admin_addr;
        self.running = Some(running);
    }

    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// Ids and key created by [`TestApp::seed`].
pub struct Seeded {
    pub org_id: String,
    pub project_id: String,
    pub user_id: String,
    pub key_id: String,
    pub key: String,
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A POST with a JSON body and the OpenAI-style bearer key.
pub fn openai_post(url: &str, key: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// Calls the admin API listening on `admin` with the test token.
pub async fn admin_at(admin: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Got {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{}", admin, path))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    send(&client(), req.body(body).unwrap()).await
}

/// Creates organization, project, user and key through the admin API at `admin`.
pub async fn seed_at(admin: SocketAddr) -> Seeded {
    let org = admin_at(admin, "POST", "/v1/organizations", Some(json!({"name": unique("org")}))).await;
    assert_eq!(org.status, 201, "{:?}", org.body);
    let org_id = org.json()["id"].as_str().unwrap().to_owned();
    let project =
        admin_at(admin, "POST", "/v1/projects", Some(json!({"organization_id": org_id, "name": "web"})))
            .await;
    assert_eq!(project.status, 201);
    let project_id = project.json()["id"].as_str().unwrap().to_owned();
    let user = admin_at(
        admin,
        "POST",
        "/v1/users",
        Some(json!({"organization_id": org_id, "external_id": "alice"})),
    )
    .await;
    assert_eq!(user.status, 201);
    let user_id = user.json()["id"].as_str().unwrap().to_owned();
    let key =
        admin_at(admin, "POST", "/v1/keys", Some(json!({"user_id": user_id, "project_id": project_id})))
            .await;
    assert_eq!(key.status, 201, "{:?}", key.body);
    let key_json = key.json();
    Seeded {
        org_id,
        project_id,
        user_id,
        key_id: key_json["id"].as_str().unwrap().to_owned(),
        key: key_json["key"].as_str().unwrap().to_owned(),
    }
}
