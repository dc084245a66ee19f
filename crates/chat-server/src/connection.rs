//! The accept loop, and a handle that lets the server close one client's connection.
//!
//! Why not `axum::serve`: a subscriber that stopped reading leaves its connection blocked
//! in a socket write, and nothing polls its stream again, so a status can never reach it
//! and its socket buffers stay pinned for as long as the peer keeps the TCP window shut
//! (a dead laptop, or someone doing it on purpose). The fan-out notices such a cursor
//! (see `fanout::Fanout::cut_off_stalled`) and needs a way to end the connection itself:
//! every accepted socket is wrapped in `KillableIo`, and its `Connection` handle rides in
//! each request's extensions down to the subscription. On HTTP/2 a stalled stream that
//! shares its connection is reset alone instead (see `client_stream`, whose executor runs
//! hyper's stream tasks). Owning the loop also lets us turn on HTTP/2 keepalive pings, so
//! dead native clients are noticed too, and is where connections are capped
//! (`connection_caps`), TLS handshakes done (`tls`), and slow or idle ones timed out
//! (hyper's HTTP/1.1 header-read timeout, `idle_timeout`). Over TLS the kill switch sits
//! above the TLS stream, so a killed connection fails at once whatever TLS buffers.
use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use futures::task::AtomicWaker;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::{
        conn::auto,
        graceful::{GracefulShutdown, Watcher},
    },
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::{
    client_addr::PeerAddr, client_stream::StreamExecutor, connection_caps::ConnectionCaps,
    idle_timeout::InFlight, metrics_endpoint::ConnectionProtocol, shutdown::Shutdown,
};

/// How often an HTTP/2 connection is pinged, and how long a ping may go unanswered.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Streams one HTTP/2 connection may have open (hyper's default is 200; 100 is the least
/// RFC 9113 recommends), and the bytes h2 buffers per stream for a peer that does not read
/// (hyper's default is 400 KiB).
pub const H2_MAX_STREAMS: u32 = 100;
pub const H2_SEND_BUFFER: usize = 64 * 1024;

/// One client connection, as seen from a request on it. Cheap to clone.
#[derive(Clone, Default)]
pub struct Connection(Arc<Kill>);

#[derive(Default)]
struct Kill {
    killed: AtomicBool,
    /// The connection task's waker, so a kill reaches a task parked in a socket write.
    waker: AtomicWaker,
    /// HTTP/2 streams open on it (see `client_stream`).
    streams: AtomicUsize,
}

impl Connection {
    /// Closes the connection: its next socket read or write fails, which ends it.
    pub fn kill(&self) {
        self.0.killed.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    pub fn is_killed(&self) -> bool {
        self.0.killed.load(Ordering::Acquire)
    }

    /// HTTP/2 streams open on this connection (0 on HTTP/1.1).
    pub fn live_streams(&self) -> usize {
        self.0.streams.load(Ordering::Acquire)
    }

    pub(crate) fn stream_started(&self) {
        self.0.streams.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn stream_ended(&self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket whose reads and writes fail once its `Connection` is killed.
struct KillableIo<T> {
    io: T,
    connection: Connection,
}

impl<T> KillableIo<T> {
    fn check(&self, cx: &Context<'_>) -> io::Result<()> {
        let kill = &self.connection.0;
        kill.waker.register(cx.waker());
        if kill.killed.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed by the server: a subscriber stopped reading",
            ));
        }
        Ok(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for KillableIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for KillableIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What the accept loop enforces on every connection.
#[derive(Clone)]
pub struct ConnectionLimits {
    pub caps: ConnectionCaps,
    /// hyper's HTTP/1.1 header-read timeout. hyper starts it whenever the connection
    /// waits for a request head, so it bounds idle keep-alive as well as slowloris.
    pub header_read_timeout: Duration,
    /// See `idle_timeout`; a connection's first request must come within
    /// `header_read_timeout`.
    pub idle_timeout: Duration,
}

/// Accepts connections until `shutdown`, then waits for the open ones to finish (streams
/// end on their own at shutdown). With `tls`, each connection's handshake comes first, in
/// its own task, within `header_read_timeout`: a client that connects and never says hello
/// holds its slot (it counts against the caps) no longer than a slow request head would.
pub async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
    shutdown: Shutdown,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(StreamExecutor);
    // hyper's smallest read buffer: an idle subscriber's connection keeps one, and chat
    // requests are small.
    builder
        .http1()
        .max_buf_size(8192)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        // What one connection's streams may hold unsent: the worst-case memory in the
        // README multiplies these.
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_send_buf_size(H2_SEND_BUFFER);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        // Over a cap: closed at once, before anything is read or allocated for it.
        let slot = match limits.caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(over) => {
                tracing::debug!(%peer, ?over, refused = limits.caps.refused(), "connection refused: over the cap");
                drop(tcp);
                continue;
            }
        };
        // Chat messages are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let serving = Serving {
            builder: builder.clone(),
            app: app.clone(),
            peer,
            limits: limits.clone(),
            graceful: graceful.watcher(),
        };
        let (tls, shutdown) = (tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let Some(tls) = tls else {
                return serving.serve(tcp).await;
            };
            let handshake = tokio::time::timeout(limits.header_read_timeout, tls.accept(tcp));
            tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => serving.serve(stream).await,
                    Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "closed a connection that did not finish its TLS handshake in {:?}", limits.header_read_timeout),
                },
                _ = shutdown.wait() => {}
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// What one accepted connection is served with, once its bytes are plain HTTP.
struct Serving {
    builder: Arc<auto::Builder<StreamExecutor>>,
    app: Router,
    peer: SocketAddr,
    limits: ConnectionLimits,
    graceful: Watcher,
}

impl Serving {
    /// Serves HTTP/1.1 or HTTP/2 on `io` (a TCP socket, or the TLS stream over one) until
    /// the connection ends, is killed, or idles out.
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let Serving {
            builder,
            app,
            peer,
            limits,
            graceful,
        } = self;
        let connection = Connection::default();
        let in_flight = InFlight::default();
        let protocol = Arc::new(ConnectionProtocol::default());
        let io = TokioIo::new(KillableIo {
            io,
            connection: connection.clone(),
        });
        let service = {
            let in_flight = in_flight.clone();
            tower::service_fn(move |mut req: http::Request<Incoming>| {
                protocol.request(req.version());
                req.extensions_mut().insert(connection.clone());
                req.extensions_mut().insert(PeerAddr(peer));
                let guard = in_flight.start();
                let response = app.clone().oneshot(req);
                async move { Ok::<_, Infallible>(InFlight::track(response.await?, guard)) }
            })
        };
        let conn = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        let (first_request_timeout, idle_timeout) =
            (limits.header_read_timeout, limits.idle_timeout);
        tokio::select! {
            ended = conn => if let Err(err) = ended {
                tracing::debug!(%err, "connection ended with an error");
            },
            // Nothing in flight, so dropping the connection cuts nothing short.
            _ = in_flight.idle_for(first_request_timeout, idle_timeout) => {
                tracing::debug!(%peer, "closed a connection idle for {idle_timeout:?}");
            }
        }
    }
}
