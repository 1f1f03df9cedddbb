//! gRPC clients of the services, each over a traced channel.

use platform::config::{ConfigError, GrpcClientSettings};
use platform::grpc::TracedChannel;
use platform::identity::IdentityKey;
use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
use proto::payments::v1::payments_service_client::PaymentsServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;
use proto::video::v1::video_service_client::VideoServiceClient;

use crate::config::ServicesSettings;

/// Cheap to clone: every client shares its channel's connection.
#[derive(Clone)]
pub struct Clients {
    pub users: UserServiceClient<TracedChannel>,
    pub videos: VideoServiceClient<TracedChannel>,
    pub engagement: EngagementServiceClient<TracedChannel>,
    pub payments: PaymentsServiceClient<TracedChannel>,
    /// Retries of idempotent reads (at most 10% extra attempts, `platform::retry`).
    pub retries: std::sync::Arc<platform::retry::RetryBudget>,
}

impl Clients {
    /// Every call carries an internal identity token signed with `identity`, and its
    /// deadline from `deadlines`.
    pub fn new(
        services: &ServicesSettings,
        identity: &IdentityKey,
        deadlines: &GrpcClientSettings,
    ) -> Result<Self, ConfigError> {
        let channel = |url: &str, key: &str| platform::grpc::channel(url, key, identity, deadlines);
        Ok(Self {
            users: UserServiceClient::new(channel(&services.user, "services.user")?),
            videos: VideoServiceClient::new(channel(&services.video, "services.video")?),
            engagement: EngagementServiceClient::new(channel(
                &services.engagement,
                "services.engagement",
            )?),
            payments: PaymentsServiceClient::new(channel(&services.payments, "services.payments")?),
            retries: std::sync::Arc::new(platform::retry::RetryBudget::default()),
        })
    }
}
