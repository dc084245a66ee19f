//! Closing connections that have had no request in flight for a while, so sockets nobody
//! uses do not pile up. A request is in flight from the moment it reaches the app until
//! its response body is done, so an open Subscribe stream keeps its connection however
//! quiet it is. A connection that has not made its first request gets only the short
//! first deadline: before that, hyper is still telling HTTP/1.1 from HTTP/2 and no
//! header-read timer of its own runs, so a trickled preface would otherwise linger.
use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::body::{Body, Bytes};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Notify;

/// The requests in flight on one connection. Cheap to clone.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Count>);

#[derive(Default)]
struct Count {
    requests: AtomicUsize,
    started: AtomicBool,
    changed: Notify,
}

impl InFlight {
    /// Counts a request until the guard drops.
    pub fn start(&self) -> RequestGuard {
        self.0.requests.fetch_add(1, Ordering::AcqRel);
        self.0.started.store(true, Ordering::Release);
        self.0.changed.notify_waiters();
        RequestGuard(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout` straight, or when no
    /// request at all has come within `first`.
    pub async fn idle_for(&self, first: Duration, timeout: Duration) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            // Registered before reading the count, so no change slips between the two.
            changed.as_mut().enable();
            if self.0.requests.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            let timeout = match self.0.started.load(Ordering::Acquire) {
                true => timeout,
                false => first,
            };
            tokio::select! {
                _ = tokio::time::sleep(timeout) => return,
                _ = changed => {}
            }
        }
    }

    /// The response with its body holding `guard`, so the request counts until the body
    /// has been sent (or dropped with the connection).
    pub fn track(response: http::Response<Body>, guard: RequestGuard) -> http::Response<Body> {
        response.map(|body| {
            Body::new(Tracked {
                body,
                _guard: guard,
            })
        })
    }
}

/// One request in flight; dropping it ends it.
pub struct RequestGuard(InFlight);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let count = &(self.0).0;
        count.requests.fetch_sub(1, Ordering::AcqRel);
        count.changed.notify_waiters();
    }
}

struct Tracked {
    body: Body,
    _guard: RequestGuard,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_last_request_ends_and_the_timeout_passes() {
        let in_flight = InFlight::default();
        let guard = in_flight.start();
        let idle = in_flight.idle_for(Duration::from_secs(5), Duration::from_secs(60));
        tokio::pin!(idle);
        // A request in flight for far longer than the timeout: never idle.
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(idle.as_mut().now_or_never().is_none());
        drop(guard);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(idle.as_mut().now_or_never().is_none());
        // A request that comes and goes restarts the clock.
        drop(in_flight.start());
        assert!(idle.as_mut().now_or_never().is_none());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(idle.as_mut().now_or_never().is_none());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(idle.as_mut().now_or_never().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_first_request_gets_the_short_deadline() {
        let in_flight = InFlight::default();
        let idle = in_flight.idle_for(Duration::from_secs(5), Duration::from_secs(60));
        tokio::pin!(idle);
        assert!(idle.as_mut().now_or_never().is_none());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(idle.as_mut().now_or_never().is_some());
    }
}
