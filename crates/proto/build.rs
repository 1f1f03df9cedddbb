//! Generates the gRPC code from `proto/` with a vendored `protoc`, so no system install is
//! needed, and the list of every RPC (`METHODS`) that the telemetry layers use to keep
//! metric labels bounded whatever path a caller sends.

use std::fmt::Write as _;
use std::path::PathBuf;

use prost::Message as _;

const PROTOS: &[&str] = &[
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
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptors)
        .compile_with_config(config, &protos, &[root])?;

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
