//! Background workers (job consumers, periodic jobs) that a service registers beside its
//! gRPC routes. They start once migrations ran, count in readiness (a worker that stopped
//! on its own makes the process unready), and take part in the graceful drain: on
//! shutdown they are told to stop taking work and get the grace period to finish what they
//! hold.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Tells a worker when the process begins draining.
#[derive(Debug, Clone)]
pub struct Draining(watch::Receiver<bool>);

impl Draining {
    /// Whether the process is draining: take no new work.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the process begins draining (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the sender is gone, which only happens once the process stops.
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

type Task = Box<dyn FnOnce(Draining) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

/// A named background task.
pub struct Worker {
    name: String,
    task: Task,
    health: WorkerHealth,
}

impl Worker {
    /// `task` runs until it has drained: it should return soon after `Draining::wait`
    /// resolves, once the work it holds is finished or handed back.
    /// `name` must be unique in the process: it names the worker's readiness check.
    pub fn new<F, Fut>(name: impl Into<String>, task: F) -> Self
    where
        F: FnOnce(Draining) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self {
            name: name.into(),
            task: Box::new(move |draining| Box::pin(task(draining))),
            health: WorkerHealth::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Healthy from its start until it stops.
    pub fn health(&self) -> WorkerHealth {
        self.health.clone()
    }
}

/// Whether a worker is still running; readiness probes it.
#[derive(Debug, Clone, Default)]
pub struct WorkerHealth(Arc<AtomicBool>);

impl WorkerHealth {
    pub fn is_running(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Tells the workers of a process to drain.
#[derive(Debug, Clone)]
pub struct DrainTrigger(Arc<watch::Sender<bool>>);

impl DrainTrigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

/// The running workers of a process.
pub struct Workers {
    drain: Arc<watch::Sender<bool>>,
    running: Vec<(String, JoinHandle<anyhow::Result<()>>)>,
}

impl Workers {
    /// Starts every worker.
    pub fn start(workers: Vec<Worker>) -> Self {
        let (drain, draining) = watch::channel(false);
        let mut running = Vec::new();
        for worker in workers {
            let flag = worker.health;
            flag.0.store(true, Ordering::SeqCst);
            let name = worker.name;
            let task = (worker.task)(Draining(draining.clone()));
            let span = tracing::info_span!("worker", worker = %name);
            let label = name.clone();
            let handle = tokio::spawn(
                async move {
                    let result = task.await;
                    flag.0.store(false, Ordering::SeqCst);
                    match &result {
                        Ok(()) => tracing::info!(worker = %label, "worker stopped"),
                        Err(e) => tracing::error!(
                            worker = %label,
                            error = format!("{e:#}"),
                            "worker failed"
                        ),
                    }
                    result
                }
                .instrument(span),
            );
            running.push((name, handle));
        }
        Self {
            drain: Arc::new(drain),
            running,
        }
    }

    /// What tells every worker to drain, for the shutdown path to fire.
    pub fn drain_trigger(&self) -> DrainTrigger {
        DrainTrigger(Arc::clone(&self.drain))
    }

    fn begin_drain(&self) {
        let _ = self.drain.send(true);
    }

    /// Waits up to `grace` for every worker to finish; stops the rest. The first error
    /// (a worker that failed, or one that did not drain in time) is returned.
    pub async fn drain(self, grace: Duration) -> anyhow::Result<()> {
        self.begin_drain();
        let deadline = tokio::time::Instant::now() + grace;
        let mut outcome = Ok(());
        for (name, mut handle) in self.running {
            let result = match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(result)) => result,
                Ok(Err(joined)) => Err(anyhow::anyhow!("worker {name} panicked: {joined}")),
                Err(_) => {
                    handle.abort();
                    Err(anyhow::anyhow!(
                        "worker {name} did not drain within the grace period"
                    ))
                }
            };
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }
}
