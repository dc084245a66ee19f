//! Graceful shutdown as an object handed to every long-lived task. Open streams end with
//! UNAVAILABLE when it fires, so the HTTP server can drain and clients know to reconnect.
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

#[derive(Clone, Debug, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown; every clone sees it.
    pub fn trigger(&self) {
        self.0.cancel();
    }

    /// Resolves once shutdown has been triggered.
    pub fn wait(&self) -> WaitForCancellationFuture<'_> {
        self.0.cancelled()
    }

    /// An owned future, for places that need `'static` (stream combinators, spawned tasks).
    pub fn wait_owned(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.0.clone().cancelled_owned()
    }
}
