//! Read access to a signal another module writes: the feed's state handed to components.
//! A `ReadSignal` would do, but it brings its own reading code for every type it holds,
//! beside the `RwSignal` code the writer already has; this wraps the writer's `RwSignal`
//! and offers only its reads, so the page compiles one set (BENCHMARKS.md, "Frontend
//! weight").

use leptos::prelude::*;

pub struct Reader<T: 'static>(RwSignal<T>);

// By hand: derived ones would ask `T: Copy`, where the signal is `Copy` whatever it holds.
impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Reader<T> {}

impl<T: Send + Sync + 'static> From<RwSignal<T>> for Reader<T> {
    fn from(signal: RwSignal<T>) -> Self {
        Reader(signal)
    }
}

impl<T: Send + Sync + 'static> Reader<T> {
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.0.with(f)
    }

    pub fn with_untracked<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.0.with_untracked(f)
    }

    pub fn track(&self) {
        self.0.track()
    }
}

impl<T: Clone + Send + Sync + 'static> Reader<T> {
    pub fn get(&self) -> T {
        self.0.get()
    }

    pub fn get_untracked(&self) -> T {
        self.0.get_untracked()
    }
}
