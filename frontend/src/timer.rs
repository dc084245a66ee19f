//! A timer as a future (setTimeout wrapped in a Promise), avoiding a timer crate.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub async fn sleep_ms(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                resolve.unchecked_ref(),
                ms.min(i32::MAX as u32) as i32,
            );
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Milliseconds since the Unix epoch, the clock the pure state machines are fed with.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
