//! Text that follows signals, in one closure type for the whole page. tachys compiles a
//! render effect (its creation, first build and updates) for every closure type a view
//! holds, and every closure is a type of its own; boxing the computation behind one
//! function's closure makes all such texts and attribute values share that code
//! (BENCHMARKS.md, "Frontend weight"; `message_list::ticking` does the same for times).

use leptos::prelude::*;
use leptos::tachys::html::attribute::AttributeValue;

/// `{text(move || ...)}` as a child, or `aria-label=text(move || ...)` as an attribute.
pub fn text(f: impl Fn() -> String + Send + 'static) -> impl IntoView + AttributeValue {
    boxed(Box::new(f))
}

fn boxed(f: Box<dyn Fn() -> String + Send>) -> impl IntoView + AttributeValue {
    move || f()
}
