//! Event handlers boxed before tachys sees them. tachys compiles its listener code (the
//! wrapper that converts the event and runs the handler under its owner, its drop and
//! call shims) once per handler type; every closure is a type of its own, so each
//! `on:click=move |_| ...` brought a copy. As `Box<dyn FnMut(E)>` all handlers of one
//! event type share a copy, and each keeps only its own body (BENCHMARKS.md, "Frontend
//! weight").

/// `on:EVENT=h(move |ev| ...)`.
pub fn h<E>(f: impl FnMut(E) + 'static) -> Box<dyn FnMut(E)> {
    Box::new(f)
}
