//! What every Social Flow process shares: layered configuration, the Postgres pool and
//! migration runner, Redis and S3 clients, health probes and the admin HTTP port, gRPC
//! server and client plumbing, and graceful shutdown.

pub mod admin;
pub mod config;
pub mod database;
pub mod faults;
pub mod grpc;
pub mod health;
pub mod jwt;
pub mod lifecycle;
pub mod pagination;
pub mod process;
pub mod redis;
pub mod s3;
pub mod service;

pub use lifecycle::Lifecycle;
