//! Dependency probes and the health report shapes of the design document.
//!
//! Every probe really talks to its dependency (Postgres `SELECT 1`, Redis `PING`, S3
//! `HeadBucket`, gRPC `grpc.health.v1.Health/Check`) under a timeout, and reports how long
//! it took.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::database::PgPool;
use crate::redis::RedisClient;
use crate::s3::S3Client;

/// How long one probe may take before it counts as unhealthy.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum Probe {
    Postgres(PgPool),
    Redis(RedisClient),
    S3 {
        client: S3Client,
        bucket: String,
    },
    /// A service's standard gRPC health endpoint (overall status, service name "").
    Grpc(tonic::transport::Channel),
    /// A background worker of this process: healthy while it runs.
    Worker(crate::worker::WorkerHealth),
}

impl Probe {
    async fn check(&self) -> Result<(), String> {
        match self {
            Self::Postgres(pool) => crate::database::ping(pool).await,
            Self::Redis(client) => crate::redis::ping(client).await,
            Self::S3 { client, bucket } => crate::s3::head_bucket(client, bucket).await,
            Self::Grpc(channel) => {
                let response = HealthClient::new(channel.clone())
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
                let status = response.into_inner().status();
                if status == ServingStatus::Serving {
                    Ok(())
                } else {
                    Err(format!("reports {}", status.as_str_name()))
                }
            }
            Self::Worker(health) => {
                if health.is_running() {
                    Ok(())
                } else {
                    Err("the worker has stopped".to_owned())
                }
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckResult {
    /// `healthy` or `unhealthy`.
    pub status: &'static str,
    /// Seconds the probe took.
    pub response_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CheckResult {
    pub fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

/// A named set of probes, run concurrently.
#[derive(Clone, Default)]
pub struct Checks {
    probes: Arc<Vec<(String, Probe)>>,
}

impl Checks {
    pub fn new(probes: Vec<(String, Probe)>) -> Self {
        Self {
            probes: Arc::new(probes),
        }
    }

    pub async fn run(&self) -> BTreeMap<String, CheckResult> {
        let runs = self.probes.iter().map(|(name, probe)| async move {
            let start = Instant::now();
            let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
            };
            let response_time = start.elapsed().as_secs_f64();
            let result = match outcome {
                Ok(()) => CheckResult {
                    status: "healthy",
                    response_time,
                    error: None,
                },
                Err(error) => {
                    tracing::warn!(dependency = %name, %error, "health probe failed");
                    CheckResult {
                        status: "unhealthy",
                        response_time,
                        error: Some(error),
                    }
                }
            };
            (name.clone(), result)
        });
        futures::future::join_all(runs).await.into_iter().collect()
    }
}

/// The `/health/detailed` body.
#[derive(Debug, Clone, Serialize)]
pub struct DetailedReport {
    pub status: &'static str,
    pub timestamp: f64,
    pub service: String,
    pub version: String,
    pub checks: BTreeMap<String, CheckResult>,
}

impl DetailedReport {
    pub fn new(service: &str, checks: BTreeMap<String, CheckResult>) -> Self {
        let healthy = checks.values().all(CheckResult::is_healthy);
        Self {
            status: if healthy { "healthy" } else { "unhealthy" },
            timestamp: unix_now(),
            service: service.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            checks,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.status == "healthy"
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
