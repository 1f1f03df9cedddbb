//! Fault injection for drills, off by default: make a named RPC fail with a chosen gRPC
//! code, or answer late, for a chosen share of calls. Driven from the admin port only (never
//! reachable through the public gateway); every active fault is the gauge
//! `fault_injection_active{service,rpc,kind}` and a warning in the log.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

/// The longest latency a fault may add.
pub const MAX_DELAY_MS: u64 = 60_000;

/// One fault on one RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer with gRPC status `code` (e.g. `UNAVAILABLE`) instead of calling the handler.
    Error { code: String, ratio: f64 },
    /// Wait `delay_ms` before calling the handler.
    Latency { delay_ms: u64, ratio: f64 },
}

impl Fault {
    fn kind(&self) -> &'static str {
        match self {
            Self::Error { .. } => "error",
            Self::Latency { .. } => "latency",
        }
    }

    fn ratio(&self) -> f64 {
        match self {
            Self::Error { ratio, .. } | Self::Latency { ratio, .. } => *ratio,
        }
    }

    /// Checks the fault makes sense; returns the error code to answer with, if any.
    pub fn validate(&self) -> Result<Option<tonic::Code>, String> {
        let ratio = self.ratio();
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(format!("ratio must be in (0, 1], got {ratio}"));
        }
        match self {
            Self::Error { code, .. } => match parse_code(code) {
                Some(tonic::Code::Ok) | None => Err(format!(
                    "code must be a gRPC error code such as UNAVAILABLE or INTERNAL, got `{code}`"
                )),
                Some(code) => Ok(Some(code)),
            },
            Self::Latency { delay_ms, .. } if *delay_ms == 0 || *delay_ms > MAX_DELAY_MS => Err(
                format!("delay_ms must be 1..={MAX_DELAY_MS}, got {delay_ms}"),
            ),
            Self::Latency { .. } => Ok(None),
        }
    }
}

fn parse_code(name: &str) -> Option<tonic::Code> {
    use tonic::Code;
    let code = match name.to_ascii_uppercase().as_str() {
        "OK" => Code::Ok,
        "CANCELLED" => Code::Cancelled,
        "UNKNOWN" => Code::Unknown,
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "DEADLINE_EXCEEDED" => Code::DeadlineExceeded,
        "NOT_FOUND" => Code::NotFound,
        "ALREADY_EXISTS" => Code::AlreadyExists,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "ABORTED" => Code::Aborted,
        "OUT_OF_RANGE" => Code::OutOfRange,
        "UNIMPLEMENTED" => Code::Unimplemented,
        "INTERNAL" => Code::Internal,
        "UNAVAILABLE" => Code::Unavailable,
        "DATA_LOSS" => Code::DataLoss,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        _ => return None,
    };
    Some(code)
}

/// An RPC method name as the fault table keys it: `GetVideo`.
pub fn valid_rpc_name(rpc: &str) -> bool {
    !rpc.is_empty() && rpc.len() <= 64 && rpc.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What an active fault does to a call, decided once when it is turned on.
#[derive(Debug, Clone, Copy)]
enum Action {
    Delay(Duration),
    Fail(tonic::Code),
}

#[derive(Debug, Clone)]
struct Active {
    fault: Fault,
    action: Action,
    ratio: f64,
}

/// The faults active in one process.
#[derive(Clone)]
pub struct Faults {
    service: &'static str,
    active: Arc<RwLock<HashMap<String, Active>>>,
}

impl Faults {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            active: Arc::default(),
        }
    }

    pub fn list(&self) -> HashMap<String, Fault> {
        self.active
            .read()
            .map(|m| {
                m.iter()
                    .map(|(rpc, a)| (rpc.clone(), a.fault.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Turns on `fault` for `rpc`, replacing any fault it had.
    pub fn set(&self, rpc: &str, fault: Fault) -> Result<(), String> {
        if !valid_rpc_name(rpc) {
            return Err(format!(
                "rpc must be a method name such as GetVideo, got `{rpc}`"
            ));
        }
        let action = match (fault.validate()?, &fault) {
            (Some(code), _) => Action::Fail(code),
            (None, Fault::Latency { delay_ms, .. }) => {
                Action::Delay(Duration::from_millis(*delay_ms))
            }
            (None, Fault::Error { .. }) => return Err("an error fault needs a code".to_owned()),
        };
        let active = Active {
            fault: fault.clone(),
            action,
            ratio: fault.ratio(),
        };
        let previous = self
            .active
            .write()
            .map_err(|_| "fault table unavailable".to_owned())?
            .insert(rpc.to_owned(), active);
        if let Some(previous) = previous {
            self.gauge(rpc, previous.fault.kind()).set(0.0);
        }
        self.gauge(rpc, fault.kind()).set(1.0);
        tracing::warn!(rpc, fault = ?fault, "fault injection turned on");
        Ok(())
    }

    /// Turns off the fault of `rpc`; whether there was one.
    pub fn clear(&self, rpc: &str) -> bool {
        let removed = self.active.write().ok().and_then(|mut m| m.remove(rpc));
        match removed {
            Some(active) => {
                self.gauge(rpc, active.fault.kind()).set(0.0);
                tracing::warn!(rpc, "fault injection turned off");
                true
            }
            None => false,
        }
    }

    fn gauge(&self, rpc: &str, kind: &'static str) -> metrics::Gauge {
        metrics::gauge!(
            telemetry::metrics::FAULT_INJECTION_ACTIVE,
            "service" => self.service,
            "rpc" => rpc.to_owned(),
            "kind" => kind
        )
    }

    fn for_path(&self, path: &str) -> Option<(Action, f64)> {
        let method = path.rsplit('/').next()?;
        let active = self.active.read().ok()?;
        if active.is_empty() {
            return None;
        }
        active.get(method).map(|a| (a.action, a.ratio))
    }
}

/// A number in [0, 1): std's randomly keyed hasher is random enough to pick a share of
/// calls, without a dependency.
fn roll() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The server-side layer. Sits inside the telemetry layer, so injected failures are
/// measured and traced like real ones.
#[derive(Clone)]
pub struct FaultLayer {
    faults: Faults,
}

impl FaultLayer {
    pub fn new(faults: Faults) -> Self {
        Self { faults }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = FaultService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FaultService {
            inner,
            faults: self.faults.clone(),
        }
    }
}

#[derive(Clone)]
pub struct FaultService<S> {
    inner: S,
    faults: Faults,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for FaultService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let mut inner = telemetry::grpc::take_ready(&mut self.inner);
        let fault = self
            .faults
            .for_path(req.uri().path())
            .filter(|(_, ratio)| roll() < *ratio)
            .map(|(action, _)| action);
        Box::pin(async move {
            match fault {
                None => inner.call(req).await,
                Some(Action::Delay(delay)) => {
                    tokio::time::sleep(delay).await;
                    inner.call(req).await
                }
                Some(Action::Fail(code)) => {
                    Ok(tonic::Status::new(code, "injected fault").into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_validated() {
        let ok = Fault::Error {
            code: "unavailable".into(),
            ratio: 0.5,
        };
        assert_eq!(ok.validate(), Ok(Some(tonic::Code::Unavailable)));
        assert!(
            Fault::Error {
                code: "OK".into(),
                ratio: 1.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Fault::Error {
                code: "BROKEN".into(),
                ratio: 1.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Fault::Error {
                code: "INTERNAL".into(),
                ratio: 0.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Fault::Latency {
                delay_ms: 0,
                ratio: 1.0
            }
            .validate()
            .is_err()
        );
        assert!(
            Fault::Latency {
                delay_ms: 250,
                ratio: 1.0
            }
            .validate()
            .is_ok()
        );
        assert!(!valid_rpc_name("Get/Video"));
        assert!(valid_rpc_name("GetVideo"));
    }

    #[test]
    fn rolls_are_spread_over_the_unit_interval() {
        let rolls: Vec<f64> = (0..1000).map(|_| roll()).collect();
        assert!(rolls.iter().all(|r| (0.0..1.0).contains(r)));
        let low = rolls.iter().filter(|r| **r < 0.5).count();
        assert!((350..650).contains(&low), "{low} of 1000 below 0.5");
    }
}
