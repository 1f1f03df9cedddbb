//! The S3 client, set up for any S3-compatible store: endpoint URL, path-style addressing,
//! static credentials, a fixed region, checksums only when required (the SDK's newer
//! default checksums break many S3-compatible servers and presigned PUTs).

use std::time::Duration;

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use secrecy::ExposeSecret;
use tracing::Instrument;

use crate::config::S3Settings;

pub use aws_sdk_s3::Client as S3Client;

pub fn client(settings: &S3Settings) -> S3Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeout = Duration::from_millis(settings.timeout_ms);
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(settings.region.clone()))
        .credentials_provider(Credentials::new(
            settings.access_key.clone(),
            settings.secret_key.expose_secret().to_owned(),
            None,
            None,
            "socialflow-config",
        ))
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(timeout)
                .connect_timeout(timeout)
                .build(),
        );
    if !settings.endpoint.is_empty() {
        config = config.endpoint_url(settings.endpoint.clone());
    }
    S3Client::from_conf(config.build())
}

/// The client span of one S3 call.
pub fn s3_span(operation: &'static str, bucket: &str) -> tracing::Span {
    tracing::info_span!(
        "s3.call",
        otel.name = %format!("S3.{operation}"),
        otel.kind = "client",
        rpc.system = "aws-api",
        rpc.service = "S3",
        rpc.method = operation,
        aws.s3.bucket = %bucket,
    )
}

/// `HeadBucket`: the `/health/detailed` probe.
pub async fn head_bucket(client: &S3Client, bucket: &str) -> Result<(), String> {
    client
        .head_bucket()
        .bucket(bucket)
        .send()
        // Debug level: this is the health probe, run every few seconds.
        .instrument(tracing::debug_span!("s3.head_bucket", bucket))
        .await
        .map(|_| ())
        .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(e).to_string())
}

/// Creates the bucket unless it exists (the owner of the bucket does this at start).
pub async fn ensure_bucket(client: &S3Client, bucket: &str) -> Result<(), String> {
    if head_bucket(client, bucket).await.is_ok() {
        return Ok(());
    }
    match client
        .create_bucket()
        .bucket(bucket)
        .send()
        .instrument(s3_span("CreateBucket", bucket))
        .await
    {
        Ok(_) => {
            tracing::info!(bucket, "bucket created");
            Ok(())
        }
        Err(e) => {
            let already = e.as_service_error().is_some_and(|se| {
                se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()
            });
            if already {
                Ok(())
            } else {
                Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            }
        }
    }
}
