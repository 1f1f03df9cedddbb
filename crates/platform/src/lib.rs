//! What every Social Flow process shares: layered configuration, the Postgres pool and
//! migration runner, Redis and S3 clients, health probes and the admin HTTP port, gRPC
//! server and client plumbing, and graceful shutdown.

pub mod admin;
pub mod breaker;
pub mod config;
pub mod database;
pub mod faults;
pub mod field;
pub mod grpc;
pub mod health;
pub mod identity;
pub mod jwt;
pub mod lifecycle;
pub mod pagination;
pub mod process;
pub mod profiling;
pub mod redis;
pub mod retry;
pub mod s3;
pub mod service;
pub mod worker;

pub use field::InvalidField;
pub use lifecycle::Lifecycle;

#[doc(hidden)]
pub use anyhow as __anyhow;
#[doc(hidden)]
pub use serde as __serde;

/// The longest login (email or username) accepted, in bytes: the longest email address
/// (RFC 5321). The gateway and user-service both refuse longer ones.
pub const MAX_LOGIN_BYTES: usize = 254;
/// The longest password a login may present, in bytes (new passwords are at most 128
/// characters); anything longer is refused before it is hashed.
pub const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;
