//! HTTP edge: the API router at `/`, the connection loop (which can drop a connection without a response
//! for the `drop` fault), and server start / shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use clb_api::{ApiError, ErrorCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::app::{ApiOutcome, ApiRequest, App};
use crate::config::Config;
use crate::error::FakeError;

/// Lets a handler close its own connection without answering.
#[derive(Clone)]
pub struct ConnKill(Arc<Notify>);

/// `Content-Type: application/json` exactly: the Python SDK ignores errors under any other value.
pub fn json_response(body: &serde_json::Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Reads at most `cap` bytes of the body; a longer body is `RequestSizeLimitExceeded` without reading the rest.
async fn read_body(body: Body, cap: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::new(
            ErrorCode::RequestSizeLimitExceeded,
            format!("The request body exceeds the limit {cap} bytes."),
        )),
        Err(e) => Err(ApiError::invalid_parameter(format!(
            "The request body could not be read: {e}"
        ))),
    }
}

async fn api_handler(
    State(app): State<Arc<App>>,
    kill: Option<axum::Extension<ConnKill>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(body, app.body_read_cap()).await {
        Ok(b) => b,
        Err(e) => return json_response(&app.refuse(&headers, e)),
    };
    let req = ApiRequest {
        method: method.as_str().to_string(),
        raw_query: uri.query().unwrap_or_default().to_string(),
        headers,
        body,
    };
    match app.handle(req).await {
        ApiOutcome::Respond(v) => json_response(&v),
        ApiOutcome::Drop => match kill {
            Some(axum::Extension(k)) => {
                k.0.notify_one();
                std::future::pending::<Response>().await
            }
            None => axum::http::StatusCode::BAD_GATEWAY.into_response(),
        },
    }
}

pub fn api_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", any(api_handler))
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

/// Accepts connections until shutdown; each connection can be killed by its handler.
async fn serve_loop(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let handle = ConnKill(kill.clone());
            let svc =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(handle.clone());
                    router.clone().oneshot(req.map(Body::new))
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "connection ended with an error") },
                _ = kill.notified() => tracing::debug!("connection dropped by a fault"),
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

/// A running fake-clb. Dropping it (or calling `shutdown`) stops both listeners.
pub struct ServerHandle {
    pub api_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub app: Arc<App>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, FakeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| FakeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Starts the API and admin listeners of `config` (port 0 picks free ports; see the handle's addresses).
pub async fn serve(config: Config) -> Result<ServerHandle, FakeError> {
    let api = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let api_addr = api.local_addr().map_err(|source| FakeError::Bind {
        addr: config.listen.to_string(),
        source,
    })?;
    let admin_addr = admin.local_addr().map_err(|source| FakeError::Bind {
        addr: config.admin_listen.to_string(),
        source,
    })?;
    let app = Arc::new(App::new(config)?);
    let (tx, rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(serve_loop(api, api_router(app.clone()), rx.clone())),
        tokio::spawn(serve_loop(
            admin,
            crate::admin::admin_router(app.clone()),
            rx,
        )),
    ];
    Ok(ServerHandle {
        api_addr,
        admin_addr,
        app,
        shutdown: tx,
        tasks,
    })
}
