//! The services' gRPC surfaces, called directly (not through the gateway): bad input is
//! INVALID_ARGUMENT naming the field, and the standard health service answers.

use proto::engagement::v1::GetVideoStatsRequest;
use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
use proto::user::v1::RegisterRequest;
use proto::user::v1::user_service_client::UserServiceClient;
use proto::video::v1::video_service_client::VideoServiceClient;
use proto::video::v1::{GetVideoRequest, ListVideosRequest};
use testkit::{ServiceName, TestApp};
use tonic::Code;
use tonic::transport::Channel;

async fn channel(app: &TestApp, name: ServiceName) -> Channel {
    Channel::from_shared(format!("http://{}", app.api_addr(name)))
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_service_refuses_bad_ids_page_sizes_and_tokens() {
    let app = TestApp::spawn().await;
    let mut videos = VideoServiceClient::new(channel(&app, ServiceName::Video).await);

    let err = videos
        .get_video(GetVideoRequest { id: "nope".into() })
        .await
        .expect_err("bad id");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("id must be a UUID"),
        "{}",
        err.message()
    );

    let err = videos
        .list_videos(ListVideosRequest {
            page_size: 500,
            page_token: String::new(),
        })
        .await
        .expect_err("page too large");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_size"));

    let err = videos
        .list_videos(ListVideosRequest {
            page_size: 10,
            page_token: "garbage!".into(),
        })
        .await
        .expect_err("forged token");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"));

    let err = videos
        .get_video(GetVideoRequest {
            id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect_err("absent");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_engagement_services_name_the_bad_field() {
    let app = TestApp::spawn().await;
    let mut users = UserServiceClient::new(channel(&app, ServiceName::User).await);
    let err = users
        .register(RegisterRequest {
            email: "ann@example.com".into(),
            username: "no spaces allowed".into(),
            password: "a long passphrase 42".into(),
            display_name: "Ann".into(),
        })
        .await
        .expect_err("bad username");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("username:"), "{}", err.message());

    let mut engagement = EngagementServiceClient::new(channel(&app, ServiceName::Engagement).await);
    let err = engagement
        .get_video_stats(GetVideoStatsRequest {
            video_id: "42".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("video_id"));

    // A video nobody watched yet has zero counts, not an error.
    let stats = engagement
        .get_video_stats(GetVideoStatsRequest {
            video_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("zero counts")
        .into_inner();
    assert_eq!((stats.views, stats.likes), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_grpc_health_and_refuses_connections_once_stopped() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let mut app = TestApp::spawn().await;
    for name in [
        ServiceName::User,
        ServiceName::Video,
        ServiceName::Engagement,
        ServiceName::Payments,
    ] {
        let mut health = HealthClient::new(channel(&app, name).await);
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{name:?}");
    }
    app.stop_service(ServiceName::Payments)
        .await
        .expect("clean stop");
    let gone = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        Channel::from_shared(format!("http://{}", app.api_addr(ServiceName::Payments)))
            .expect("url")
            .connect(),
    )
    .await;
    assert!(
        !matches!(gone, Ok(Ok(_))),
        "a stopped service accepts no connections"
    );
}
