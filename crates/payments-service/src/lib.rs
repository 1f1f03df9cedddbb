//! payments-service: subscription plans, ad revenue and creator payouts (schema `payments`).

mod grpc;
mod store;

use platform::config::InternalAuthSettings;
use platform::service::{Parts, Shared};
use proto::payments::v1::payments_service_server::PaymentsServiceServer as Server;

platform::grpc_service! {
    pub struct Service: "payments-service", schema "payments", build build,
    defaults include_str!("../config/default.toml"),
    settings { auth: InternalAuthSettings },
    migrations [(1, "plans", include_str!("../migrations/0001_plans.sql"))]
}

async fn build(_: &Settings, shared: &Shared) -> anyhow::Result<Parts> {
    let plans = grpc::PaymentsApi::new(store::Store(shared.db.clone()));
    Ok(Parts::grpc(
        Server::new(plans).max_decoding_message_size(shared.max_message_bytes()),
    ))
}
