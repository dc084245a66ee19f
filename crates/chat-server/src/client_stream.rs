//! One request's stream as the stall sweeper sees it, so that cutting a stalled stream
//! ends that stream only. hyper runs every HTTP/2 stream as a task of its own, spawned
//! through our `StreamExecutor`, which makes each one abortable and counts it on its
//! connection: aborting drops the stream's task, and h2 then sends RST_STREAM(CANCEL) and
//! discards what it still queued for it. A body that yields an error would not do: hyper
//! stops polling a body whose stream has no flow-control window left, exactly the case
//! of a stalled reader. When the stream is the last one on its connection, the connection
//! is closed instead (which also frees its socket buffers). HTTP/1.1 carries one stream
//! at a time, so there cutting the stream is closing the connection.
use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
};

use futures::future::{AbortHandle, Abortable};

use crate::connection::Connection;

tokio::task_local! {
    /// The HTTP/2 stream whose task is running.
    static CURRENT: Arc<StreamTask>;
}

/// Spawns hyper's per-stream tasks (HTTP/2), each abortable and known to the requests it
/// serves; anything else hyper spawns is treated alike.
#[derive(Clone, Copy, Default)]
pub struct StreamExecutor;

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let (abort, registration) = AbortHandle::new_pair();
        let task = Arc::new(StreamTask {
            abort,
            connection: OnceLock::new(),
            ended: AtomicBool::new(false),
        });
        let ended = TaskEnd(task.clone());
        let fut = Abortable::new(fut, registration);
        tokio::spawn(CURRENT.scope(task, async move {
            let _ended = ended;
            let _ = fut.await;
        }));
    }
}

/// An HTTP/2 stream's task.
struct StreamTask {
    abort: AbortHandle,
    /// Set by the first request served (see `ClientStream::of`), counted there.
    connection: OnceLock<Connection>,
    /// The task ended or was cut: no longer counted on its connection.
    ended: AtomicBool,
}

impl StreamTask {
    /// Uncounts the stream once; false if it already was.
    fn end(&self) -> bool {
        if self.ended.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Some(connection) = self.connection.get() {
            connection.stream_ended();
        }
        true
    }
}

/// Held by the spawned task, so the stream is uncounted however the task ends.
struct TaskEnd(Arc<StreamTask>);

impl Drop for TaskEnd {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The client's end of one stream: its connection and, on HTTP/2, the stream itself.
/// Cheap to clone; the fan-out keeps one per reader, to cut it if it stalls.
#[derive(Clone)]
pub struct ClientStream {
    connection: Connection,
    stream: Option<Arc<StreamTask>>,
}

/// What `ClientStream::cut` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Cut {
    /// The stream was reset; its connection goes on carrying the others.
    Stream,
    /// The connection was closed: nothing else lived on it.
    Connection,
    /// The stream had already ended, or its connection was already closed.
    Nothing,
}

impl ClientStream {
    /// The stream the running request arrived on, counted on `connection` (the first time
    /// for each stream). Called while serving the request (see `app::dispatch`), which
    /// runs in the stream's task.
    pub fn of(connection: Connection) -> Self {
        let stream = CURRENT.try_with(Arc::clone).ok();
        if let Some(task) = &stream {
            if task.connection.set(connection.clone()).is_ok() {
                connection.stream_started();
            }
        }
        ClientStream { connection, stream }
    }

    /// Ends this stream: resets it alone when other streams live on its connection,
    /// closes the connection otherwise.
    pub fn cut(&self) -> Cut {
        if self.connection.is_killed() {
            return Cut::Nothing;
        }
        // A stream of its own only on HTTP/2; on HTTP/1.1 the connection is the stream.
        if let Some(task) = &self.stream {
            if !task.end() {
                return Cut::Nothing;
            }
            if self.connection.live_streams() > 0 {
                task.abort.abort();
                return Cut::Stream;
            }
        }
        self.connection.kill();
        Cut::Connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` streams on one connection as hyper's HTTP/2 server would, each holding its
    /// `ClientStream` until its task ends; returns them.
    async fn streams(connection: &Connection, n: usize) -> Vec<ClientStream> {
        let (found, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..n {
            let (connection, found) = (connection.clone(), found.clone());
            hyper::rt::Executor::execute(&StreamExecutor, async move {
                found.send(ClientStream::of(connection)).unwrap();
                std::future::pending::<()>().await
            });
        }
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(rx.recv().await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_stream_sharing_its_connection_is_reset_alone() {
        let connection = Connection::default();
        let streams = streams(&connection, 3).await;
        assert_eq!(connection.live_streams(), 3);
        assert_eq!(streams[0].cut(), Cut::Stream);
        assert_eq!(streams[0].cut(), Cut::Nothing, "once");
        assert_eq!(streams[1].cut(), Cut::Stream);
        assert!(!connection.is_killed());
        assert_eq!(streams[2].cut(), Cut::Connection, "the last one left");
        assert!(connection.is_killed());
    }

    #[tokio::test]
    async fn a_stream_that_ended_is_uncounted() {
        let connection = Connection::default();
        let streams = streams(&connection, 2).await;
        streams[0].stream.as_ref().unwrap().abort.abort();
        while connection.live_streams() != 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(streams[0].cut(), Cut::Nothing);
        assert_eq!(streams[1].cut(), Cut::Connection);
    }

    #[test]
    fn outside_an_http2_stream_the_connection_is_the_stream() {
        let connection = Connection::default();
        let stream = ClientStream::of(connection.clone());
        assert_eq!(connection.live_streams(), 0);
        assert_eq!(stream.cut(), Cut::Connection);
        assert_eq!(stream.cut(), Cut::Nothing);
    }
}
