//! The accept loop, and a handle that lets the server close one client's connection.
//!
//! Why not `axum::serve`: a subscriber that stopped reading leaves its connection blocked
//! in a socket write, and nothing polls its stream again, so a status can never reach it
//! and its socket buffers stay pinned for as long as the peer keeps the TCP window shut
//! (a dead laptop, or someone doing it on purpose). The fan-out notices such a cursor
//! (see `fanout::Fanout::cut_off_stalled`) and needs a way to end the connection itself:
//! every accepted socket is wrapped in `KillableIo`, and its `Connection` handle rides in
//! each request's extensions down to the subscription. Owning the loop also lets us turn
//! on HTTP/2 keepalive pings, so dead native clients are noticed too.
use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use futures::task::AtomicWaker;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
};
use tower::ServiceExt;

use crate::{client_addr::PeerAddr, shutdown::Shutdown};

/// How often an HTTP/2 connection is pinged, and how long a ping may go unanswered.
const H2_KEEPALIVE: Duration = Duration::from_secs(20);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// One client connection, as seen from a request on it. Cheap to clone.
#[derive(Clone, Default)]
pub struct Connection(Arc<Kill>);

#[derive(Default)]
struct Kill {
    killed: AtomicBool,
    /// The connection task's waker, so a kill reaches a task parked in a socket write.
    waker: AtomicWaker,
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

/// Accepts connections until `shutdown`, then waits for the open ones to finish (streams
/// end on their own at shutdown).
pub async fn accept_loop(listener: TcpListener, app: Router, shutdown: Shutdown) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's smallest read buffer: an idle subscriber's connection keeps one, and chat
    // requests are small.
    builder.http1().max_buf_size(8192);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEPALIVE)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
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
        // Chat messages are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let connection = Connection::default();
        let io = TokioIo::new(KillableIo {
            io: tcp,
            connection: connection.clone(),
        });
        let service = app
            .clone()
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(connection.clone());
                req.extensions_mut().insert(PeerAddr(peer));
                req
            });
        let conn = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
