//! The HTTP face of the server: one port for native gRPC (HTTP/2), grpc-web (HTTP/1.1
//! and HTTP/2) and the built frontend.
//!
//! Only gRPC requests go through the grpc-web layer: tonic-web answers 400 to any plain
//! HTTP/1.1 request, which would break static files. So requests are dispatched on their
//! content type first; CORS wraps both, because preflights carry no gRPC content type.
use std::{io, time::Duration};

use axum::{
    extract::{Request, State},
    response::Response,
    Router,
};
use chat_proto::{server::chat_service_server::ChatServiceServer, FILE_DESCRIPTOR_SET};
use http::{header, HeaderName, HeaderValue, Method, Version};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    accounts::Accounts,
    address_budgets::AddressBudgets,
    client_addr::{ClientIp, PeerAddr, TrustedProxies},
    client_stream::ClientStream,
    cluster::{self, ClusterSettings},
    config::Config,
    connection::{self, Connection},
    connection_caps::ConnectionCaps,
    error::ChatError,
    hub::{HubSettings, RoomHub},
    idempotency, metrics_endpoint,
    room_creation::RoomCreation,
    service::ChatApi,
    sessions::Sessions,
    shutdown::Shutdown,
    static_files,
    stream_caps::StreamCaps,
    tls::{self, ServerTls},
};

#[derive(Clone)]
struct Dispatch {
    grpc: Router,
    files: Router,
    proxies: TrustedProxies,
}

/// Builds the whole application. Health reports SERVING until shutdown starts, except
/// while the database cannot be reached (see `database_health`).
pub async fn router(
    config: &Config,
    hub: RoomHub,
    accounts: Accounts,
    stream_caps: StreamCaps,
    shutdown: Shutdown,
) -> io::Result<Router> {
    let budgets = AddressBudgets::new(config.budget_settings());
    let rooms = RoomCreation::new(config.max_new_rooms_per_hour);
    let store = hub.store().clone();
    let chat = ChatServiceServer::new(ChatApi::new(
        hub,
        accounts,
        budgets,
        stream_caps,
        rooms,
        config.heartbeat_ms,
    ))
    .max_decoding_message_size(config.max_request_bytes);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ChatServiceServer<ChatApi>>().await;
    if store.assigns_ids() {
        tokio::spawn(database_health(store, health.clone(), shutdown.clone()));
    }
    tokio::spawn(async move {
        shutdown.wait().await;
        health.set_not_serving::<ChatServiceServer<ChatApi>>().await;
    });

    // Reflection answers in both versions of its protocol (grpcurl and grpcui of today ask
    // v1; older ones and Postman ask v1alpha), and either lists every service: the chat,
    // health, and both reflections.
    let described = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let reflection = described().build_v1().map_err(io::Error::other)?;
    let reflection_v1alpha = described().build_v1alpha().map_err(io::Error::other)?;

    let grpc = tonic::service::Routes::new(chat)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .prepare()
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new());

    let app = Router::new().fallback(dispatch).with_state(Dispatch {
        grpc,
        files: static_files::router(config.static_dir.as_deref()),
        proxies: TrustedProxies::new(config.trusted_proxies.clone()),
    });
    Ok(match cors(&config.allowed_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    })
}

/// Serves until `shutdown` fires, then lets open requests finish (streams end with
/// UNAVAILABLE once they sent what was queued), and commits every accepted message
/// before returning.
/// With `--metrics-addr`, also serves /metrics there (`metrics_endpoint`).
pub async fn serve(listener: TcpListener, config: Config, shutdown: Shutdown) -> io::Result<()> {
    // Before the database: a certificate that does not load stops the start untouched.
    let tls = load_tls(&config)?;
    let metrics = match config.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await.map_err(|err| {
                io::Error::new(err.kind(), format!("--metrics-addr {addr}: {err}"))
            })?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listening at /metrics");
            // Before the hub opens: its writer and rings take their metric handles then.
            Some((listener, metrics_endpoint::install()))
        }
        None => None,
    };
    let hub = open_hub(&config).await?;
    serve_watched(listener, config, hub, tls, metrics, shutdown).await
}

/// `--tls-cert` and `--tls-key` loaded, when given; an error names the file at fault.
fn load_tls(config: &Config) -> io::Result<Option<ServerTls>> {
    config
        .tls_files()
        .map(|files| ServerTls::load(files).map_err(io::Error::other))
        .transpose()
}

/// The rooms and their store as `config` says, for `serve_hub`.
pub async fn open_hub(config: &Config) -> io::Result<RoomHub> {
    RoomHub::open(HubSettings {
        db: &config.db,
        durability: config.db_sync.into(),
        max_rooms: config.max_rooms,
        max_conversations: config.max_conversations,
        queue_len: config.subscriber_queue,
        fanout_bytes: config.fanout_memory_mb.saturating_mul(1 << 20),
        store_reads: config.store_reads(),
    })
    .await
    .map_err(io::Error::other)
}

/// `serve` over a hub opened beforehand, so a test can look at what it holds
/// (`RoomHub::memory_stats`) while it serves; without metrics, which need their
/// recorder before the hub opens.
pub async fn serve_hub(
    listener: TcpListener,
    config: Config,
    hub: RoomHub,
    shutdown: Shutdown,
) -> io::Result<()> {
    let tls = load_tls(&config)?;
    serve_watched(listener, config, hub, tls, None, shutdown).await
}

async fn serve_watched(
    listener: TcpListener,
    config: Config,
    hub: RoomHub,
    tls: Option<ServerTls>,
    metrics: Option<(TcpListener, PrometheusHandle)>,
    shutdown: Shutdown,
) -> io::Result<()> {
    // After the hub: opening the message store creates or upgrades the database.
    let account_store = hub.store().accounts().map_err(io::Error::other)?;
    let accounts = Accounts::open(account_store, Sessions::new(config.limits()))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(
        accounts
            .clone()
            .sweep_every(SESSION_SWEEP, shutdown.clone()),
    );
    let stream_caps = StreamCaps::new(config.max_streams, config.max_streams_per_ip);
    let connection_caps =
        ConnectionCaps::new(config.max_connections, config.max_connections_per_ip);
    if let Some((listener, handle)) = metrics {
        let sources = metrics_endpoint::Sources {
            hub: hub.clone(),
            sessions: accounts.sessions().clone(),
            streams: stream_caps.clone(),
            connections: connection_caps.clone(),
            db: config.db.sqlite_path().map(std::path::Path::to_owned),
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = metrics_endpoint::serve(listener, handle, sources, shutdown).await {
                tracing::error!(%err, "the metrics listener failed; /metrics is gone");
            }
        });
    }
    if let Some(url) = &config.nats {
        if config.db.sqlite_path().is_some() {
            return Err(io::Error::other(
                "--nats joins servers sharing a PostgreSQL database (--db postgres://...); \
                 a SQLite file belongs to one server",
            ));
        }
        cluster::join(
            url,
            &hub,
            accounts.clone(),
            ClusterSettings::default(),
            shutdown.clone(),
        )
        .await
        .map_err(io::Error::other)?;
    }
    let app = router(
        &config,
        hub.clone(),
        accounts,
        stream_caps,
        shutdown.clone(),
    )
    .await?;
    {
        let (hub, shutdown) = (hub.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.wait().await;
            hub.end_streams();
        });
    }
    tokio::spawn(hub.clone().drop_unused_rooms_every(
        Duration::from_secs(config.empty_room_ttl_secs),
        shutdown.clone(),
    ));
    tokio::spawn(idempotency::prune_every(
        hub.store().clone(),
        shutdown.clone(),
    ));
    tokio::spawn(hub.clone().cut_off_stalled_every(
        std::time::Duration::from_millis(config.stall_timeout_ms.max(1)),
        shutdown.clone(),
    ));
    let limits = connection::ConnectionLimits {
        caps: connection_caps,
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms.max(1)),
        idle_timeout: Duration::from_secs(config.idle_timeout_secs.max(1)),
    };
    #[cfg(unix)]
    tokio::spawn(tls::reload_on_hangup(tls.clone(), shutdown.clone())?);
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), static_dir = ?config.static_dir, "chat-server listening");
    let acceptor = tls.map(|tls| tls.acceptor().clone());
    let served = connection::accept_loop(listener, app, limits, acceptor, shutdown).await;
    hub.close().await;
    served
}

/// How often a server on PostgreSQL checks that it can reach the database, and how long
/// an answer may take.
const DATABASE_PROBE_EVERY: Duration = Duration::from_secs(1);
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Health follows the database: NOT_SERVING while a probe fails (a balancer then sends
/// new clients to a server that can save their messages), SERVING once one succeeds.
/// Only for a shared database: a SQLite file beside the server has nothing to lose.
async fn database_health(
    store: crate::store::MessageStore,
    health: tonic_health::server::HealthReporter,
    shutdown: Shutdown,
) {
    let mut ticks = shutdown.every(DATABASE_PROBE_EVERY);
    let mut serving = true;
    while ticks.next().await {
        let reachable = store.reachable(DATABASE_PROBE_TIMEOUT).await;
        // Shutdown sets NOT_SERVING for good; a late probe must not undo it.
        if reachable == serving || shutdown.is_triggered() {
            continue;
        }
        serving = reachable;
        if serving {
            tracing::info!("the database is reachable again; health is SERVING");
            health.set_serving::<ChatServiceServer<ChatApi>>().await;
        } else {
            tracing::warn!("the database cannot be reached; health is NOT_SERVING");
            health.set_not_serving::<ChatServiceServer<ChatApi>>().await;
        }
    }
}

/// How often idle sessions are looked for; expiry is also checked on every use.
const SESSION_SWEEP: std::time::Duration = std::time::Duration::from_secs(10);

/// The content types tonic-web takes as grpc-web; over HTTP/1.1 nothing else is gRPC.
const GRPC_WEB_TYPES: [&str; 4] = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
];

async fn dispatch(State(to): State<Dispatch>, mut req: Request) -> Response {
    // Requests built in-process (tests driving the router directly) have no peer.
    if let Some(PeerAddr(peer)) = req.extensions().get::<PeerAddr>().copied() {
        let ip = to.proxies.client_ip(peer.ip(), req.headers());
        req.extensions_mut().insert(ClientIp(ip));
    }
    // Every stream is counted on its connection, so a stalled one can be cut alone.
    if let Some(connection) = req.extensions().get::<Connection>().cloned() {
        req.extensions_mut().insert(ClientStream::of(connection));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let is_grpc = content_type.starts_with("application/grpc");
    if is_grpc && req.version() < Version::HTTP_2 && !GRPC_WEB_TYPES.contains(&content_type) {
        // tonic-web would answer a bare HTTP 400, which a gRPC client reports as an
        // unexplained INTERNAL error; say what is wrong instead (found by fuzzing).
        let refused = ChatError::GrpcNeedsHttp2(content_type.to_owned());
        return tonic::Status::from(refused).into_http();
    }
    let target = if is_grpc { to.grpc } else { to.files };
    match target.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// CORS for a frontend hosted on another origin. None when only the same origin may call.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| match HeaderValue::from_str(o) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        tracing::warn!(
                            origin = o,
                            "ignoring an allowed origin that is not a valid header value"
                        );
                        None
                    }
                }),
        )
    };
    let headers = [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "authorization",
    ];
    let exposed = [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "retry-after-ms",
    ];
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(headers.map(HeaderName::from_static))
            .expose_headers(exposed.map(HeaderName::from_static))
            .max_age(std::time::Duration::from_secs(24 * 3600)),
    )
}
