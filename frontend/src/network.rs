//! What the browser knows about connectivity. A dropped Wi-Fi can leave a streaming fetch
//! hanging silently; the server's heartbeats catch that within a few intervals, and the
//! browser's own `offline` event catches it at once, so the feed listens for both.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use wasm_bindgen_futures::JsFuture;

pub fn online() -> bool {
    web_sys::window()
        .map(|w| w.navigator().on_line())
        .unwrap_or(true)
}

/// Resolves when the browser goes offline. The listener is removed on drop, so one per
/// stream does not pile up across reconnects.
pub struct WentOffline {
    promise: JsFuture,
    listener: Option<(web_sys::Window, js_sys::Function)>,
}

impl WentOffline {
    pub fn new() -> Self {
        let mut resolve = None;
        let promise = js_sys::Promise::new(&mut |res, _rej| resolve = Some(res));
        // The promise's resolve function is itself the event listener.
        let listener = web_sys::window().zip(resolve).filter(|(window, resolve)| {
            window
                .add_event_listener_with_callback("offline", resolve)
                .is_ok()
        });
        WentOffline {
            promise: JsFuture::from(promise),
            listener,
        }
    }
}

impl Future for WentOffline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.promise).poll(cx).map(|_| ())
    }
}

impl Drop for WentOffline {
    fn drop(&mut self) {
        if let Some((window, resolve)) = self.listener.take() {
            let _ = window.remove_event_listener_with_callback("offline", &resolve);
        }
    }
}
