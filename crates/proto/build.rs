//! Generates the gRPC code from `proto/` with a vendored `protoc`, so no system install is
//! needed, and the list of every RPC (`METHODS`) that the telemetry layers use to keep
//! metric labels bounded whatever path a caller sends.

use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message as _;

const PROTOS: &[&str] = &[
    "perftools/profiles/profile.proto",
    "socialflow/common/v1/common.proto",
    "socialflow/user/v1/user.proto",
    "socialflow/video/v1/video.proto",
    "socialflow/engagement/v1/engagement.proto",
    "socialflow/payments/v1/payments.proto",
];

/// Messages the REST API serves as they are (below `.socialflow.`).
const SERVED: &[&str] = &[
    "common.v1.VideoStats",
    "common.v1.Money",
    "user.v1.Profile",
    "video.v1.Video",
    "video.v1.Playback",
    "video.v1.CreatedUpload",
    "video.v1.PartUrl",
    "engagement.v1.Author",
    "engagement.v1.Comment",
    "engagement.v1.Post",
    "engagement.v1.TrendingVideo",
    "engagement.v1.GetTrendingResponse",
    "payments.v1.Subscription",
    "payments.v1.Earnings",
    "payments.v1.EarningsLine",
    "payments.v1.Payout",
    "payments.v1.ListPayoutsResponse",
    "payments.v1.RevenueLine",
    "payments.v1.RevenueSummary",
    "payments.v1.IngestAdRevenueResponse",
    "payments.v1.TransferResponse",
    "payments.v1.RunPayoutsResponse",
];

/// `google.protobuf.Timestamp` fields of those: RFC 3339 strings, `null` when absent.
const TIMESTAMPS: &[&str] = &[
    "user.v1.Profile.created_at",
    "video.v1.Video.created_at",
    "video.v1.Playback.expires_at",
    "video.v1.CreatedUpload.expires_at",
    "engagement.v1.Comment.created_at",
    "engagement.v1.Post.created_at",
    "payments.v1.Subscription.current_period_start",
    "payments.v1.Subscription.current_period_end",
    "payments.v1.Subscription.created_at",
    "payments.v1.EarningsLine.period_start",
    "payments.v1.EarningsLine.period_end",
    "payments.v1.Payout.created_at",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let descriptors = out.join("descriptors.bin");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Upload chunks stay `Bytes` from the wire to the object store: no copy per chunk.
    config.bytes([".socialflow.video.v1.UploadVideoRequest.chunk"]);
    // Messages the REST API serves as they are: serialised straight from the generated
    // types (times as RFC 3339, statuses as lowercase names), never re-declared field by
    // field in the gateway.
    // Each also describes itself for the REST API's OpenAPI document (utoipa), so the spec
    // is generated from the very types that are serialised.
    let serialize = "#[derive(serde::Serialize, utoipa::ToSchema)]";
    let timestamp = "#[serde(serialize_with = \"crate::serde_ext::timestamp\")] \
                     #[schema(value_type = Option<String>, format = DateTime)]";
    let mut builder = tonic_prost_build::configure().file_descriptor_set_path(&descriptors);
    for message in SERVED {
        builder = builder.type_attribute(format!(".socialflow.{message}"), serialize);
    }
    for field in TIMESTAMPS {
        builder = builder.field_attribute(format!(".socialflow.{field}"), timestamp);
    }
    builder
        .field_attribute(
            ".socialflow.video.v1.Video.status",
            "#[serde(serialize_with = \"crate::serde_ext::video_status\")] \
             #[schema(value_type = crate::serde_ext::VideoStatusName)]",
        )
        .field_attribute(
            ".socialflow.video.v1.Video.visibility",
            "#[serde(serialize_with = \"crate::serde_ext::visibility\")] \
             #[schema(value_type = crate::serde_ext::VisibilityName)]",
        )
        .compile_with_config(
            config,
            &protos,
            &[root, protoc_bin_vendored::include_path()?],
        )?;

    let set = prost_types::FileDescriptorSet::decode(std::fs::read(&descriptors)?.as_slice())?;
    let mut methods = String::from(
        "/// Every RPC of the Social Flow services: (fully qualified service, method).\n\
         pub const METHODS: &[(&str, &str)] = &[\n",
    );
    for file in &set.file {
        for service in &file.service {
            let qualified = format!("{}.{}", file.package(), service.name());
            for method in &service.method {
                writeln!(methods, "    ({qualified:?}, {:?}),", method.name())?;
            }
        }
    }
    methods.push_str("];\n");
    std::fs::write(out.join("methods.rs"), methods)?;
    Ok(())
}
