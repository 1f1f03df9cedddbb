//! The gateway and the services behind it, end to end over real connections.

mod auth;
mod bad_input;
mod engagement;
mod faults;
mod follows;
mod hardening;
mod health;
mod logs;
mod metrics;
mod openapi;
mod outages;
mod payments;
mod profiling;
mod reliability;
mod resources;
mod security;
mod shutdown;
mod support;
mod tracing;
mod videos;
