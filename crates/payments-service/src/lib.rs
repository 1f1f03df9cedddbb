//! payments-service: subscription plans, ad revenue and creator payouts (schema `payments`).

mod grpc;
mod store;

use platform::database::Migration;
use platform::service::{DatabaseServiceSettings, Parts, Shared};
use proto::payments::v1::payments_service_server::PaymentsServiceServer;
use tonic::service::Routes;

/// payments-service, as the platform runs it.
pub struct Service;

impl platform::service::Service for Service {
    const NAME: &'static str = "payments-service";
    const CRATE: &'static str = env!("CARGO_CRATE_NAME");
    const SCHEMA: &'static str = "payments";
    const MIGRATIONS: &'static [Migration] = &[Migration {
        version: 1,
        name: "plans",
        sql: include_str!("../migrations/0001_plans.sql"),
    }];
    const DEFAULTS: &'static str = include_str!("../config/default.toml");
    type Settings = DatabaseServiceSettings;

    async fn build(_settings: &Self::Settings, shared: &Shared) -> anyhow::Result<Parts> {
        let api = grpc::PaymentsApi::new(store::Store(shared.db.clone()));
        Ok(Parts::new(Routes::new(
            PaymentsServiceServer::new(api)
                .max_decoding_message_size(shared.server.grpc_max_message_bytes),
        )))
    }
}
