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
    let serialize = "#[derive(serde::Serialize)]";
    let timestamp = "#[serde(serialize_with = \"crate::serde_ext::timestamp\")]";
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .type_attribute(".socialflow.common.v1.VideoStats", serialize)
        .type_attribute(".socialflow.common.v1.Money", serialize)
        .type_attribute(".socialflow.user.v1.Profile", serialize)
        .field_attribute(".socialflow.user.v1.Profile.created_at", timestamp)
        .type_attribute(".socialflow.video.v1.Video", serialize)
        .type_attribute(".socialflow.video.v1.Playback", serialize)
        .type_attribute(".socialflow.video.v1.CreatedUpload", serialize)
        .type_attribute(".socialflow.video.v1.PartUrl", serialize)
        .field_attribute(".socialflow.video.v1.CreatedUpload.expires_at", timestamp)
        .field_attribute(".socialflow.video.v1.Playback.expires_at", timestamp)
        .field_attribute(".socialflow.video.v1.Video.created_at", timestamp)
        .field_attribute(
            ".socialflow.video.v1.Video.status",
            "#[serde(serialize_with = \"crate::serde_ext::video_status\")]",
        )
        .field_attribute(
            ".socialflow.video.v1.Video.visibility",
            "#[serde(serialize_with = \"crate::serde_ext::visibility\")]",
        )
        .type_attribute(".socialflow.engagement.v1.Author", serialize)
        .type_attribute(".socialflow.engagement.v1.Comment", serialize)
        .field_attribute(".socialflow.engagement.v1.Comment.created_at", timestamp)
        .type_attribute(".socialflow.engagement.v1.Post", serialize)
        .field_attribute(".socialflow.engagement.v1.Post.created_at", timestamp)
        .type_attribute(".socialflow.engagement.v1.TrendingVideo", serialize)
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
