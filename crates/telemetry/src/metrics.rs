//! Every metric name Social Flow emits, declared once with its help text and labels.
//!
//! Names are the design document's, so its dashboards and alerts work; labels are bounded
//! (route templates, codes, small enums), never user, video, post or creator ids or IPs.
//! Histograms are real Prometheus histograms with buckets, so they aggregate across replicas.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::ServiceInfo;

// HTTP (the gateway's public port). Labels: method, endpoint (route template), status_code.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
pub const HTTP_REQUEST_SIZE_BYTES: &str = "http_request_size_bytes";
pub const HTTP_RESPONSE_SIZE_BYTES: &str = "http_response_size_bytes";
/// Labels: error_type, endpoint.
pub const ERRORS_TOTAL: &str = "errors_total";
/// Log lines dropped because the writer thread fell behind (see `stdout`).
pub const LOG_LINES_DROPPED_TOTAL: &str = "log_lines_dropped_total";
/// Label: endpoint. Requests shed at once because the gateway was at `http.max_in_flight`.
pub const HTTP_REQUESTS_SHED_TOTAL: &str = "http_requests_shed_total";
/// HTTP requests in flight.
pub const ACTIVE_CONNECTIONS: &str = "active_connections";
/// Label: service.
pub const DATABASE_CONNECTIONS_ACTIVE: &str = "database_connections_active";
/// Label: service. The pool's size: saturation is active / max.
pub const DATABASE_CONNECTIONS_MAX: &str = "database_connections_max";
/// Label: service.
pub const REDIS_CONNECTIONS_ACTIVE: &str = "redis_connections_active";
/// Labels: upstream, outcome (`retried`, `budget_exhausted`). Retries of idempotent reads.
pub const GRPC_CLIENT_RETRIES_TOTAL: &str = "grpc_client_retries_total";
/// Label: upstream. 0 closed, 1 half-open, 2 open (platform::breaker).
pub const CIRCUIT_BREAKER_STATE: &str = "circuit_breaker_state";
/// Label: upstream. Calls failed fast by an open breaker.
pub const CIRCUIT_BREAKER_REJECTIONS_TOTAL: &str = "circuit_breaker_rejections_total";
/// Labels: service, rpc, kind. 1 while a drill fault is on (see platform::faults).
pub const FAULT_INJECTION_ACTIVE: &str = "fault_injection_active";

// gRPC. Labels: grpc_service, grpc_method, grpc_code.
pub const GRPC_SERVER_HANDLED_TOTAL: &str = "grpc_server_handled_total";
pub const GRPC_SERVER_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
pub const GRPC_CLIENT_HANDLED_TOTAL: &str = "grpc_client_handled_total";
pub const GRPC_CLIENT_HANDLING_SECONDS: &str = "grpc_client_handling_seconds";

// Business.
pub const USER_REGISTRATIONS_TOTAL: &str = "user_registrations_total";
/// Label: status.
pub const VIDEO_UPLOADS_TOTAL: &str = "video_uploads_total";
/// Views counted (once per viewer per video per window, after the minimum watch time).
pub const VIDEO_VIEWS_TOTAL: &str = "video_views_total";
/// Label: reason (`duplicate`, `too_short`, `address_limit`). Views reported, not counted.
pub const VIDEO_VIEWS_REJECTED_TOTAL: &str = "video_views_rejected_total";
/// Likes given to posts.
pub const POST_LIKES_TOTAL: &str = "post_likes_total";
/// Label: target_type (`video`, `post`, `comment`). Likes given.
pub const LIKES_TOTAL: &str = "likes_total";
/// Comments written (replies included).
pub const COMMENTS_TOTAL: &str = "comments_total";
/// Posts written.
pub const POSTS_TOTAL: &str = "posts_total";
/// Seconds since counted views were last added in Postgres.
pub const VIEW_FLUSH_LAG_SECONDS: &str = "engagement_view_flush_lag_seconds";
/// Label: cache (`videos`, `trending`). Hits over lookups, per refresh interval.
pub const CACHE_HIT_RATIO: &str = "engagement_cache_hit_ratio";
/// Labels: cache (`videos`), result (`hit`, `miss`). The gateway's cache of video answers.
pub const GATEWAY_CACHE_LOOKUPS_TOTAL: &str = "gateway_cache_lookups_total";
/// Label: content_type.
pub const CONTENT_UPLOADS_TOTAL: &str = "content_uploads_total";
/// Bytes of each completed video upload.
pub const VIDEO_UPLOAD_SIZE_BYTES: &str = "video_upload_size_bytes";
/// Label: status (as `video_uploads_total`).
pub const VIDEO_UPLOAD_DURATION_SECONDS: &str = "video_upload_duration_seconds";
/// Label: outcome (`ready`, `retry`, `failed`).
pub const VIDEO_PROCESSING_DURATION_SECONDS: &str = "video_processing_duration_seconds";
/// Label: outcome (`ready`, `retry`, `failed`).
pub const VIDEO_PROCESSING_ATTEMPTS_TOTAL: &str = "video_processing_attempts_total";
/// Label: state (`ready`, `leased`, `dead`).
pub const VIDEO_PROCESSING_JOBS: &str = "video_processing_jobs";
/// Labels: currency, source. Revenue counters count minor units (cents for USD), added
/// only after the ledger transaction commits.
pub const REVENUE_TOTAL: &str = "revenue_total";
/// Label: outcome (`succeeded`, `declined`, `timeout`, `error`). Calls to the payment
/// provider, retries included.
pub const PAYMENT_ATTEMPTS_TOTAL: &str = "payment_attempts_total";
/// Unbalanced journal transactions plus accounts whose balance is not the sum of their
/// postings, from payments-service's periodic check: 0 in a sound ledger.
pub const LEDGER_IMBALANCE: &str = "ledger_imbalance";
/// Labels: plan_id, currency.
pub const REVENUE_SUBSCRIPTIONS_TOTAL: &str = "revenue_subscriptions_total";
/// Label: currency.
pub const REVENUE_ADS_TOTAL: &str = "revenue_ads_total";
/// Label: currency.
pub const REVENUE_CREATOR_PAYOUTS_TOTAL: &str = "revenue_creator_payouts_total";
/// Label: activity_type.
pub const USER_ENGAGEMENT_DURATION_SECONDS: &str = "user_engagement_duration_seconds";
/// Label: content_type.
pub const CONTENT_PERFORMANCE_SCORE: &str = "content_performance_score";
pub const DAILY_ACTIVE_USERS: &str = "daily_active_users";
pub const MONTHLY_ACTIVE_USERS: &str = "monthly_active_users";

// Security.
/// Label: reason.
pub const FAILED_LOGINS_TOTAL: &str = "failed_logins_total";
/// Label: activity_type.
pub const SUSPICIOUS_ACTIVITY_TOTAL: &str = "suspicious_activity_total";
/// Label: endpoint.
pub const RATE_LIMIT_HITS_TOTAL: &str = "rate_limit_hits_total";
/// Labels: event_type, severity.
pub const SECURITY_EVENTS_TOTAL: &str = "security_events_total";
/// Logins and registrations refused because every password hashing slot stayed busy.
pub const PASSWORD_HASHING_REJECTED_TOTAL: &str = "password_hashing_rejected_total";

/// Labels: service, version. Always 1.
pub const BUILD_INFO: &str = "socialflow_build_info";

/// Latency buckets (seconds): 1 ms to 10 s, dense where our SLO (300 ms p95) sits.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Size buckets (bytes): 100 B to 1 GiB in decades.
pub const SIZE_BUCKETS: &[f64] = &[
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
    10_000_000.0,
    100_000_000.0,
    1_073_741_824.0,
];
/// Engagement durations (seconds): 1 s to 2 h.
pub const ENGAGEMENT_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
];
/// Media work (seconds): 100 ms to an hour (uploads and processing of large files).
pub const MEDIA_DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0,
];
/// Performance scores (engagement-service's formula: a video with 100 views, 10 likes and
/// 2 comments that is half watched scores about 15; the scale is logarithmic).
pub const SCORE_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 16.0, 20.0, 30.0, 50.0, 100.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once), describes every metric and
/// records `socialflow_build_info`. Needs a Tokio runtime for the upkeep task.
pub(crate) fn install(info: &ServiceInfo) {
    let handle = HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), SIZE_BUCKETS))
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(USER_ENGAGEMENT_DURATION_SECONDS.into()),
                    ENGAGEMENT_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(CONTENT_PERFORMANCE_SCORE.into()),
                    SCORE_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(VIDEO_UPLOAD_DURATION_SECONDS.into()),
                    MEDIA_DURATION_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(VIDEO_PROCESSING_DURATION_SECONDS.into()),
                    MEDIA_DURATION_BUCKETS,
                )
            })
            // Anything else that is a histogram still renders as one, never as a summary.
            .and_then(|b| b.set_buckets(LATENCY_BUCKETS));
        #[expect(
            clippy::expect_used,
            reason = "the bucket lists above are constants and non-empty"
        )]
        let builder = builder.expect("bucket lists are non-empty");
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                // Another recorder was installed first (only happens in odd test setups):
                // render an empty registry rather than crash the process.
                eprintln!("telemetry: Prometheus recorder not installed: {e}");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        // Without upkeep the recorder's histogram buffers grow without bound.
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        handle
    });
    let _ = (handle, info);
    describe();
}

/// The process's metrics in the Prometheus text format (what `/metrics` serves).
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Marks a process as part of this registry's output (one `socialflow_build_info` per
/// service running in the process; one per process in production).
pub fn record_build_info(service: &str) {
    metrics::gauge!(BUILD_INFO, "service" => service.to_owned(), "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests handled, by method, route template and status code."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from request received to response ready, by method and route template."
    );
    describe_histogram!(
        HTTP_REQUEST_SIZE_BYTES,
        Unit::Bytes,
        "HTTP request body size, by method and route template."
    );
    describe_histogram!(
        HTTP_RESPONSE_SIZE_BYTES,
        Unit::Bytes,
        "HTTP response body size, by method and route template."
    );
    describe_counter!(
        ERRORS_TOTAL,
        "Requests that ended in an error, by error type and route template."
    );
    describe_gauge!(ACTIVE_CONNECTIONS, "HTTP requests being served right now.");
    describe_gauge!(
        DATABASE_CONNECTIONS_ACTIVE,
        "Postgres connections checked out of the pool."
    );
    describe_gauge!(
        DATABASE_CONNECTIONS_MAX,
        "Size of the Postgres connection pool."
    );
    describe_gauge!(
        REDIS_CONNECTIONS_ACTIVE,
        "1 while this process's Redis client is connected, 0 while it is not."
    );
    describe_gauge!(
        FAULT_INJECTION_ACTIVE,
        "1 while an injected fault is active on an RPC (drills only)."
    );
    describe_counter!(
        GRPC_SERVER_HANDLED_TOTAL,
        "RPCs completed on the server, by service, method and gRPC code."
    );
    describe_histogram!(
        GRPC_SERVER_HANDLING_SECONDS,
        Unit::Seconds,
        "Time to complete an RPC on the server, by service, method and gRPC code."
    );
    describe_counter!(
        GRPC_CLIENT_HANDLED_TOTAL,
        "RPCs completed by clients, by service, method and gRPC code."
    );
    describe_histogram!(
        GRPC_CLIENT_HANDLING_SECONDS,
        Unit::Seconds,
        "Time for an outgoing RPC to complete, by service, method and gRPC code."
    );
    describe_counter!(USER_REGISTRATIONS_TOTAL, "Accounts created.");
    describe_counter!(
        LOG_LINES_DROPPED_TOTAL,
        "Log lines dropped because the log writer thread fell behind."
    );
    metrics::counter!(LOG_LINES_DROPPED_TOTAL).increment(0);
    describe_counter!(VIDEO_UPLOADS_TOTAL, "Video uploads, by outcome status.");
    describe_counter!(
        VIDEO_VIEWS_TOTAL,
        "Video views counted: once per viewer per video per window, after the minimum watch time."
    );
    describe_counter!(
        VIDEO_VIEWS_REJECTED_TOTAL,
        "Video views reported but not counted, by reason."
    );
    describe_counter!(POST_LIKES_TOTAL, "Likes given to posts.");
    describe_counter!(LIKES_TOTAL, "Likes given, by target type.");
    describe_counter!(COMMENTS_TOTAL, "Comments written, replies included.");
    describe_counter!(POSTS_TOTAL, "Posts written.");
    describe_gauge!(
        VIEW_FLUSH_LAG_SECONDS,
        Unit::Seconds,
        "Seconds since counted views were last added to Postgres."
    );
    describe_gauge!(
        CACHE_HIT_RATIO,
        "Share of lookups answered from a cache, by cache, over the last refresh interval."
    );
    describe_counter!(CONTENT_UPLOADS_TOTAL, "Content uploads, by content type.");
    describe_histogram!(
        VIDEO_UPLOAD_SIZE_BYTES,
        Unit::Bytes,
        "Size of each completed video upload."
    );
    describe_histogram!(
        VIDEO_UPLOAD_DURATION_SECONDS,
        Unit::Seconds,
        "Time from the first byte of a video upload to its answer, by outcome status."
    );
    describe_histogram!(
        VIDEO_PROCESSING_DURATION_SECONDS,
        Unit::Seconds,
        "Time one processing attempt of a video took, by outcome."
    );
    describe_counter!(
        VIDEO_PROCESSING_ATTEMPTS_TOTAL,
        "Video processing attempts, by outcome (ready, retry, failed)."
    );
    describe_gauge!(
        VIDEO_PROCESSING_JOBS,
        "Video processing jobs by state: ready (waiting), leased (running), dead (out of attempts)."
    );
    describe_counter!(
        REVENUE_TOTAL,
        "Revenue in the smallest currency unit, by currency and source."
    );
    describe_counter!(
        REVENUE_SUBSCRIPTIONS_TOTAL,
        "Subscription revenue in the smallest currency unit, by plan and currency."
    );
    describe_counter!(
        HTTP_REQUESTS_SHED_TOTAL,
        "Requests shed with 503 because the gateway had http.max_in_flight requests in flight."
    );
    describe_counter!(
        GRPC_CLIENT_RETRIES_TOTAL,
        "Retries of idempotent reads that failed UNAVAILABLE, and retries the budget refused."
    );
    describe_gauge!(
        CIRCUIT_BREAKER_STATE,
        "Circuit breaker of each upstream: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        CIRCUIT_BREAKER_REJECTIONS_TOTAL,
        "Calls failed fast because the upstream's circuit breaker was open."
    );
    describe_counter!(
        PAYMENT_ATTEMPTS_TOTAL,
        "Calls to the payment provider, retries included, by outcome."
    );
    describe_gauge!(
        LEDGER_IMBALANCE,
        "Unbalanced journal transactions plus accounts whose balance differs from their postings (must be 0)."
    );
    describe_counter!(
        REVENUE_ADS_TOTAL,
        "Ad revenue in the smallest currency unit, by currency."
    );
    describe_counter!(
        REVENUE_CREATOR_PAYOUTS_TOTAL,
        "Creator payouts in the smallest currency unit, by currency."
    );
    describe_histogram!(
        USER_ENGAGEMENT_DURATION_SECONDS,
        Unit::Seconds,
        "Time users spend per activity, by activity type."
    );
    describe_histogram!(
        CONTENT_PERFORMANCE_SCORE,
        "Content performance score (logarithmic; formula in engagement-service domain.rs), by content type."
    );
    describe_gauge!(DAILY_ACTIVE_USERS, "Distinct users active today.");
    describe_gauge!(
        MONTHLY_ACTIVE_USERS,
        "Distinct users active in the last 30 days."
    );
    describe_counter!(FAILED_LOGINS_TOTAL, "Failed logins, by reason.");
    describe_counter!(
        SUSPICIOUS_ACTIVITY_TOTAL,
        "Suspicious activity detected, by activity type."
    );
    describe_counter!(
        GATEWAY_CACHE_LOOKUPS_TOTAL,
        "Lookups of the gateway's cache of GET /api/v1/videos/{id} answers, by cache and result (hit, miss)."
    );
    describe_counter!(
        RATE_LIMIT_HITS_TOTAL,
        "Requests refused by the rate limiter, by route template."
    );
    describe_counter!(
        SECURITY_EVENTS_TOTAL,
        "Security events, by event type and severity."
    );
    describe_counter!(
        PASSWORD_HASHING_REJECTED_TOTAL,
        "Logins and registrations refused (503) because every password hashing slot stayed busy."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels say which service and version is running."
    );
}

/// The gRPC status code as the label value Prometheus users know from go-grpc-prometheus.
pub fn grpc_code_label(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "Canceled",
        tonic::Code::Unknown => "Unknown",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::DeadlineExceeded => "DeadlineExceeded",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::AlreadyExists => "AlreadyExists",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::OutOfRange => "OutOfRange",
        tonic::Code::Unimplemented => "Unimplemented",
        tonic::Code::Internal => "Internal",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::DataLoss => "DataLoss",
        tonic::Code::Unauthenticated => "Unauthenticated",
    }
}
