//! Generates the gRPC code from `proto/` with a vendored `protoc`, so no system install is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "socialflow/user/v1/user.proto",
    "socialflow/video/v1/video.proto",
    "socialflow/engagement/v1/engagement.proto",
    "socialflow/payments/v1/payments.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &protos, &[root])?;
    Ok(())
}
