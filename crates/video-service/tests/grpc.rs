//! The services' gRPC surfaces, called directly (not through the gateway): only with a valid
//! internal identity token, bad input is INVALID_ARGUMENT naming the field, metric labels
//! stay bounded whatever path a caller sends, and the standard health service answers.

use platform::identity::Caller;
use proto::engagement::v1::GetVideoStatsRequest;
use proto::engagement::v1::engagement_service_client::EngagementServiceClient;
use proto::user::v1::RegisterRequest;
use proto::user::v1::user_service_client::UserServiceClient;
use proto::user::v1::{DeleteAccountRequest, GetMeRequest};
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
    let mut videos = VideoServiceClient::new(
        app.service_channel(ServiceName::Video, Caller::Anonymous)
            .await,
    );

    let err = videos
        .get_video(GetVideoRequest { id: "nope".into() })
        .await
        .expect_err("bad id");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("id: must be a UUID"),
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
    let mut users = UserServiceClient::new(
        app.service_channel(ServiceName::User, Caller::Anonymous)
            .await,
    );
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

    let mut engagement = EngagementServiceClient::new(
        app.service_channel(ServiceName::Engagement, Caller::Anonymous)
            .await,
    );
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
        .into_inner()
        .stats
        .expect("counts");
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

/// A request carrying `metadata` pairs, as any pod on the internal network could send.
fn forged<T>(message: T, metadata: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (key, value) in metadata {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("ascii metadata"));
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_call_without_a_valid_internal_token_is_unauthenticated_whatever_it_claims() {
    let app = TestApp::spawn().await;
    let victim = uuid::Uuid::new_v4().to_string();
    let outsider = platform::identity::IdentityKey::new(
        &platform::config::InternalAuthSettings {
            internal_token_secret: "a-key-the-platform-does-not-use-0123456789"
                .to_owned()
                .into(),
            allow_development_key: false,
        },
        "intruder",
    )
    .sign(Caller::User(uuid::Uuid::parse_str(&victim).expect("uuid")));
    let attempts: [&[(&'static str, &str)]; 4] = [
        &[("x-user-id", &victim)],
        &[
            ("x-user-id", &victim),
            ("x-socialflow-identity", "not-a-token"),
        ],
        &[("x-socialflow-identity", &outsider)],
        &[],
    ];
    for metadata in attempts {
        let mut users = UserServiceClient::new(channel(&app, ServiceName::User).await);
        let err = users
            .get_me(forged(GetMeRequest {}, metadata))
            .await
            .expect_err("no valid proof");
        assert_eq!(err.code(), Code::Unauthenticated, "{metadata:?}: {err:?}");
        let err = users
            .delete_account(forged(DeleteAccountRequest {}, metadata))
            .await
            .expect_err("no valid proof");
        assert_eq!(err.code(), Code::Unauthenticated, "{metadata:?}: {err:?}");

        let mut videos = VideoServiceClient::new(channel(&app, ServiceName::Video).await);
        let err = videos
            .get_video(forged(GetVideoRequest { id: victim.clone() }, metadata))
            .await
            .expect_err("no valid proof");
        assert_eq!(err.code(), Code::Unauthenticated, "{metadata:?}: {err:?}");

        let mut engagement =
            EngagementServiceClient::new(channel(&app, ServiceName::Engagement).await);
        let err = engagement
            .get_video_stats(forged(
                GetVideoStatsRequest {
                    video_id: victim.clone(),
                },
                metadata,
            ))
            .await
            .expect_err("no valid proof");
        assert_eq!(err.code(), Code::Unauthenticated, "{metadata:?}: {err:?}");

        let mut payments = proto::payments::v1::payments_service_client::PaymentsServiceClient::new(
            channel(&app, ServiceName::Payments).await,
        );
        let err = payments
            .list_plans(forged(
                proto::payments::v1::ListPlansRequest::default(),
                metadata,
            ))
            .await
            .expect_err("no valid proof");
        assert_eq!(err.code(), Code::Unauthenticated, "{metadata:?}: {err:?}");
    }

    // The same calls with the gateway's proof are answered.
    let mut users = UserServiceClient::new(
        app.service_channel(
            ServiceName::User,
            Caller::User(uuid::Uuid::parse_str(&victim).expect("uuid")),
        )
        .await,
    );
    let err = users
        .get_me(GetMeRequest {})
        .await
        .expect_err("no such user");
    assert_eq!(err.code(), Code::NotFound, "the proof is accepted: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_unknown_services_and_methods_share_one_metric_label() {
    let app = TestApp::spawn().await;
    let mut grpc = tonic::client::Grpc::new(
        app.service_channel(ServiceName::User, Caller::Anonymous)
            .await,
    );
    for path in [
        "/evil.Service-1a2b3c/Anything",
        "/evil.Service-4d5e6f/Other",
        "/socialflow.user.v1.UserService/NoSuchMethod9z",
    ] {
        grpc.ready().await.expect("ready");
        let err = grpc
            .unary::<_, (), _>(
                tonic::Request::new(()),
                http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await
            .expect_err("no such RPC");
        assert_eq!(err.code(), Code::Unimplemented, "{path}");
    }
    let metrics = app
        .admin_get(ServiceName::User, "/metrics")
        .await
        .text()
        .await
        .expect("metrics");
    for raw in ["evil", "NoSuchMethod9z", "1a2b3c"] {
        assert!(!metrics.contains(raw), "`{raw}` became a label:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"grpc_service="_unknown",grpc_method="_unknown""#)
            || metrics.contains(r#"grpc_method="_unknown",grpc_service="_unknown""#),
        "unknown services are labelled _unknown"
    );
    assert!(
        metrics.contains(r#"grpc_method="_unknown""#),
        "an unknown method of a known service too"
    );
}
