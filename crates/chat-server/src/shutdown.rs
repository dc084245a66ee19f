//! Graceful shutdown as an object handed to every long-lived task. Open streams end with
//! UNAVAILABLE when it fires, so the HTTP server can drain and clients know to reconnect.
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
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

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once shutdown has been triggered.
    pub fn wait(&self) -> WaitForCancellationFuture<'_> {
        self.0.cancelled()
    }

    /// A timer for periodic housekeeping that stops at shutdown: `while ticks.next().await`.
    /// The first tick is at once; a late tick is not made up for.
    pub fn every(&self, period: Duration) -> Ticks {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ticks {
            interval,
            shutdown: self.clone(),
        }
    }

    /// An owned future, for places that need `'static` (stream combinators, spawned tasks).
    pub fn wait_owned(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.0.clone().cancelled_owned()
    }
}

/// See [`Shutdown::every`].
pub struct Ticks {
    interval: Interval,
    shutdown: Shutdown,
}

impl Ticks {
    /// Waits for the next tick; false once shutdown has started.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => true,
            _ = self.shutdown.wait() => false,
        }
    }
}
