//! payments-service: subscription plans, ad revenue and creator payouts (schema `payments`).

mod grpc;
mod store;

use std::future::Future;

use platform::config::{ConfigError, Sources};
use platform::database::{Db, Migration};
use platform::grpc::Listeners;
use platform::service::{DatabaseServiceSettings, ServiceSpec};
use proto::payments::v1::payments_service_server::PaymentsServiceServer;
use tonic::service::Routes;

pub const SERVICE: &str = "payments-service";
pub const SCHEMA: &str = "payments";

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "plans",
    sql: include_str!("../migrations/0001_plans.sql"),
}];

pub type Settings = DatabaseServiceSettings;

pub fn load_settings(sources: &Sources) -> Result<Settings, ConfigError> {
    platform::service::load_settings(include_str!("../config/default.toml"), sources)
}

/// Runs the service on `listeners` until `shutdown` resolves, then drains and returns.
pub async fn run(
    settings: Settings,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let pool = platform::database::pool(&settings.database)?;
    let api = grpc::PaymentsApi::new(store::Store::new(Db::new(pool.clone())));
    let spec = ServiceSpec::new(SERVICE, SCHEMA, MIGRATIONS, pool, &settings);
    let routes = Routes::new(
        PaymentsServiceServer::new(api)
            .max_decoding_message_size(settings.server.grpc_max_message_bytes),
    );
    platform::service::run(spec, listeners, routes, shutdown).await
}
