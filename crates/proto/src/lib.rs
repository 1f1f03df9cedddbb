//! Generated gRPC code for the Social Flow services. Nothing here is written by hand but
//! how the generated types serialise to JSON (`serde_ext`) and convert to and from
//! `chrono`: edit `proto/socialflow/<svc>/v1/*.proto` and rebuild.

#![expect(
    clippy::allow_attributes,
    reason = "prost and tonic generate `#[allow]` attributes into this crate"
)]

pub mod serde_ext;

/// The pprof profile format (CPU profiles served by the admin port).
pub mod pprof {
    tonic::include_proto!("perftools.profiles");
}

pub mod common {
    pub mod v1 {
        tonic::include_proto!("socialflow.common.v1");
    }
}

pub mod user {
    pub mod v1 {
        tonic::include_proto!("socialflow.user.v1");
    }
}

pub mod video {
    pub mod v1 {
        tonic::include_proto!("socialflow.video.v1");
    }
}

pub mod engagement {
    pub mod v1 {
        tonic::include_proto!("socialflow.engagement.v1");
    }
}

pub mod payments {
    pub mod v1 {
        tonic::include_proto!("socialflow.payments.v1");
    }
}

include!(concat!(env!("OUT_DIR"), "/methods.rs"));
