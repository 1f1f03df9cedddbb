//! The gateway and the services behind it, end to end over real connections.

mod bad_input;
mod faults;
mod health;
mod logs;
mod metrics;
mod resources;
mod shutdown;
mod tracing;
