//! gRPC plumbing shared by the services: listeners, the server with our telemetry layer,
//! graceful shutdown, and traced client channels.

use std::future::Future;
use std::time::Duration;

use telemetry::grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::Layer as _;
use tower::layer::util::{Identity, Stack};

use crate::config::{ConfigError, ServerSettings};
use crate::faults::{FaultLayer, Faults};
use crate::lifecycle::Lifecycle;

/// A gRPC service's two listeners. Tests bind port 0; `main` binds the configured ports.
pub struct Listeners {
    pub grpc: tokio::net::TcpListener,
    pub admin: std::net::TcpListener,
}

impl Listeners {
    pub async fn bind(server: &ServerSettings) -> std::io::Result<Self> {
        let grpc = bind(&server.host, server.port, "server.port")?;
        grpc.set_nonblocking(true)?;
        let admin = bind(&server.host, server.admin_port, "server.admin_port")?;
        Ok(Self {
            grpc: tokio::net::TcpListener::from_std(grpc)?,
            admin,
        })
    }
}

/// Binds `host:port`, waiting up to 10 s while the port is in use. A fixed port inside the
/// kernel's ephemeral range (50051-50054 are, on Linux) can be held for a moment by some
/// outgoing connection's local end; that passes, a second server on the port does not.
/// The error names the address and the setting.
pub fn bind(host: &str, port: u16, key: &str) -> std::io::Result<std::net::TcpListener> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpListener::bind((host, port)) {
            Ok(listener) => return Ok(listener),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                tracing::warn!(host, port, "port in use; retrying");
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {host}:{port} (`{key}`): {e}"),
                ));
            }
        }
    }
}

/// `Server::builder()` with the layers every service uses. Order matters: telemetry is
/// outermost so injected faults are measured and traced like real failures.
pub fn server(faults: Faults) -> Server<Stack<FaultLayer, Stack<GrpcServerLayer, Identity>>> {
    Server::builder()
        .layer(GrpcServerLayer)
        .layer(FaultLayer::new(faults))
}

/// Serves until `shutdown` resolves, then: readiness and gRPC health turn NOT_SERVING, the
/// listener stops accepting, in-flight RPCs get up to `grace` to finish.
///
/// `start` receives the incoming connections and the drain signal and returns the tonic
/// server future (`server().add_service(..).serve_with_incoming_shutdown(incoming, signal)`).
pub async fn serve<F, Fut>(
    listener: tokio::net::TcpListener,
    lifecycle: Lifecycle,
    health: HealthReporter,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    start: F,
) -> anyhow::Result<()>
where
    F: FnOnce(TcpIncoming, futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
{
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = Box::pin(async move {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(start(TcpIncoming::from(listener), drain));
    tokio::select! {
        () = shutdown => {}
        finished = &mut server => {
            // The server stopped on its own: that is an error worth exiting on.
            finished??;
            return Ok(());
        }
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    lifecycle.begin_shutdown();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, &mut server).await {
        Ok(finished) => finished??,
        Err(_) => {
            tracing::warn!("grace period over with requests still in flight; stopping anyway");
            server.abort();
        }
    }
    Ok(())
}

/// A channel to another service that opens a client span and carries trace context and
/// request ids in every call's metadata.
pub type TracedChannel = GrpcClientService<Channel>;

/// A lazily connecting, traced channel to `url` (the setting `key`, for error messages).
pub fn channel(url: &str, key: &str) -> Result<TracedChannel, ConfigError> {
    Ok(GrpcClientLayer.layer(raw_channel(url, key)?))
}

/// An untraced channel (health probes, which would otherwise fill traces with noise).
pub fn raw_channel(url: &str, key: &str) -> Result<Channel, ConfigError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ConfigError::invalid(key, format!("`{url}` is not a URL: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}
