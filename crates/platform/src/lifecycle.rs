//! A process's lifecycle as readiness sees it: starting → ready → draining.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

#[derive(Debug, Clone, Default)]
pub struct Lifecycle(Arc<AtomicU8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Migrations or other start-up work still running.
    Starting,
    /// Serving.
    Ready,
    /// Shutdown began: finishing in-flight work, taking no new work.
    Draining,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::SeqCst) {
            STARTING => Phase::Starting,
            READY => Phase::Ready,
            _ => Phase::Draining,
        }
    }

    /// Start-up finished. Never undoes a shutdown that already began.
    pub fn mark_ready(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn begin_shutdown(&self) {
        self.0.store(DRAINING, Ordering::SeqCst);
    }
}
