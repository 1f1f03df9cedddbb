//! The whole system in one test: four services and the gateway, on port 0.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use platform::config::Sources;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{S3Server, TcpProxy, TestDatabase, s3};

/// The processes a [`TestApp`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceName {
    Gateway,
    User,
    Video,
    Engagement,
    Payments,
}

impl ServiceName {
    pub const ALL: [ServiceName; 5] = [
        ServiceName::Gateway,
        ServiceName::User,
        ServiceName::Video,
        ServiceName::Engagement,
        ServiceName::Payments,
    ];
}

struct Running {
    admin: SocketAddr,
    api: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Knobs for [`TestApp::spawn_with`].
#[derive(Default)]
pub struct TestAppBuilder {
    engagement_delay: Option<Duration>,
    postgres: Option<String>,
    env: Vec<(String, String)>,
    only: Option<Vec<ServiceName>>,
}

impl TestAppBuilder {
    /// Slows every call video-service makes to engagement-service by `delay` per chunk.
    pub fn engagement_delay(mut self, delay: Duration) -> Self {
        self.engagement_delay = Some(delay);
        self
    }

    /// The test database on this server (its maintenance database's URL) instead of the
    /// shared one: see [`crate::postgres::OwnCluster`].
    pub fn postgres(mut self, admin_url: String) -> Self {
        self.postgres = Some(admin_url);
        self
    }

    /// Starts only these processes (all five by default).
    pub fn only(mut self, services: &[ServiceName]) -> Self {
        self.only = Some(services.to_vec());
        self
    }

    /// Overrides one setting, as an environment variable would (`SOCIALFLOW__…`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub async fn spawn(self) -> TestApp {
        TestApp::spawn_with(self).await
    }
}

pub struct TestApp {
    pub http: reqwest::Client,
    pub db: TestDatabase,
    pub s3: S3Server,
    pub bucket: String,
    pub redis_prefix: String,
    /// Between the gateway and Redis: `redis_proxy.stop()` makes Redis unreachable.
    pub redis_proxy: TcpProxy,
    /// Between video-service and engagement-service.
    pub engagement_proxy: TcpProxy,
    /// Between every process and the object store.
    pub s3_proxy: TcpProxy,
    /// Signs internal identity tokens as the gateway does, for calling services directly.
    pub identity: platform::identity::IdentityKey,
    /// The `auth.internal_token_secret` every process of this app shares.
    pub internal_token_secret: String,
    /// The `auth.jwt_secret` access tokens are signed with.
    pub jwt_secret: String,
    running: HashMap<ServiceName, Running>,
    /// Every setting the processes were given, as `SOCIALFLOW__…` variables.
    settings: HashMap<String, String>,
}

fn listener() -> std::net::TcpListener {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.set_nonblocking(true).expect("non-blocking listener");
    l
}

async fn grpc_listeners() -> (platform::grpc::Listeners, SocketAddr, SocketAddr) {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind grpc");
    let admin = listener();
    let (g, a) = (
        grpc.local_addr().expect("grpc addr"),
        admin.local_addr().expect("admin addr"),
    );
    (platform::grpc::Listeners { grpc, admin }, g, a)
}

fn redis_url() -> String {
    std::env::var("SOCIALFLOW_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(TestAppBuilder::default()).await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    async fn spawn_with(options: TestAppBuilder) -> Self {
        crate::telemetry();
        let db = match &options.postgres {
            Some(admin) => TestDatabase::create_at(admin).await,
            None => TestDatabase::create().await,
        };
        let s3 = S3Server::start().await;
        let bucket = format!("sf-test-{}", crate::unique_suffix());
        let redis_prefix = format!("test:{}:", crate::unique_suffix());
        let redis_target: SocketAddr = {
            let url = redis_url();
            let host_port = url
                .trim_start_matches("redis://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            tokio::net::lookup_host(host_port)
                .await
                .expect("resolve redis")
                .next()
                .expect("redis address")
        };
        let redis_proxy = TcpProxy::start(redis_target).await;
        let s3_proxy = TcpProxy::start(s3.addr()).await;

        let (user_l, user_grpc, user_admin) = grpc_listeners().await;
        let (video_l, video_grpc, video_admin) = grpc_listeners().await;
        let (eng_l, eng_grpc, eng_admin) = grpc_listeners().await;
        let (pay_l, pay_grpc, pay_admin) = grpc_listeners().await;
        let gateway_http = listener();
        let gateway_admin = listener();
        let (gw_http, gw_admin) = (
            gateway_http.local_addr().expect("gateway addr"),
            gateway_admin.local_addr().expect("gateway admin addr"),
        );
        let engagement_proxy = TcpProxy::start(eng_grpc).await;
        if let Some(delay) = options.engagement_delay {
            engagement_proxy.set_delay(delay);
        }

        let mut env: HashMap<String, String> = [
            ("SOCIALFLOW__DATABASE__URL", db.url().to_owned()),
            ("SOCIALFLOW__DATABASE__MAX_CONNECTIONS", "4".to_owned()),
            (
                "SOCIALFLOW__REDIS__URL",
                format!("redis://{}", redis_proxy.addr()),
            ),
            ("SOCIALFLOW__REDIS__KEY_PREFIX", redis_prefix.clone()),
            ("SOCIALFLOW__REDIS__COMMAND_TIMEOUT_MS", "500".to_owned()),
            (
                "SOCIALFLOW__S3__ENDPOINT",
                format!("http://{}", s3_proxy.addr()),
            ),
            ("SOCIALFLOW__S3__BUCKET", bucket.clone()),
            ("SOCIALFLOW__S3__ACCESS_KEY", s3::ACCESS_KEY.to_owned()),
            ("SOCIALFLOW__S3__SECRET_KEY", s3::SECRET_KEY.to_owned()),
            ("SOCIALFLOW__S3__TIMEOUT_MS", "1500".to_owned()),
            ("SOCIALFLOW__SERVER__SHUTDOWN_GRACE_SECS", "10".to_owned()),
            (
                "SOCIALFLOW__ENGAGEMENT__URL",
                format!("http://{}", engagement_proxy.addr()),
            ),
            ("SOCIALFLOW__SERVICES__USER", format!("http://{user_grpc}")),
            ("SOCIALFLOW__USERS__URL", format!("http://{user_grpc}")),
            ("SOCIALFLOW__VIDEOS__URL", format!("http://{video_grpc}")),
            ("SOCIALFLOW__VIEWS__FLUSH_INTERVAL_MS", "200".to_owned()),
            (
                "SOCIALFLOW__SERVICES__VIDEO",
                format!("http://{video_grpc}"),
            ),
            (
                "SOCIALFLOW__SERVICES__ENGAGEMENT",
                format!("http://{eng_grpc}"),
            ),
            (
                "SOCIALFLOW__SERVICES__PAYMENTS",
                format!("http://{pay_grpc}"),
            ),
            ("SOCIALFLOW__HTTP__WORKERS", "1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.insert("SOCIALFLOW__HTTP__MAX_BODY_BYTES".into(), "4096".into());
        let jwt_secret = format!("test-secret-{}-0123456789abcdef", crate::unique_suffix());
        env.insert("SOCIALFLOW__AUTH__JWT_SECRET".into(), jwt_secret.clone());
        let internal_secret = format!("test-internal-{}-0123456789abcdef", crate::unique_suffix());
        env.insert(
            "SOCIALFLOW__AUTH__INTERNAL_TOKEN_SECRET".into(),
            internal_secret.clone(),
        );
        env.insert("SOCIALFLOW__ACTIVITY__REFRESH_SECS".into(), "1".into());
        env.insert("SOCIALFLOW__SERVER__FAULT_INJECTION".into(), "true".into());
        // Rate limits out of the way unless a test sets its own.
        for class in ["LOGIN", "REGISTER", "ANONYMOUS", "AUTHENTICATED"] {
            env.insert(
                format!("SOCIALFLOW__RATE_LIMIT__{class}__PER_MINUTE"),
                "100000".into(),
            );
            env.insert(
                format!("SOCIALFLOW__RATE_LIMIT__{class}__BURST"),
                "100000".into(),
            );
        }
        for (key, value) in &options.env {
            env.insert(key.clone(), value.clone());
        }
        let sources = Sources {
            config_dir: std::path::PathBuf::from("/nonexistent"),
            env_name: "test".into(),
            env,
        };

        // Each started process gets a stop signal; the others' listeners are dropped, so
        // calls to them are refused like calls to a process that is down.
        let mut running = HashMap::new();
        macro_rules! start {
            ($name:expr, $load:expr, $run:path, $listeners:expr, $api:expr, $admin:expr) => {{
                if options
                    .only
                    .as_ref()
                    .is_none_or(|only| only.contains(&$name))
                {
                    let settings = $load(&sources).expect("valid test settings");
                    let (tx, rx) = oneshot::channel::<()>();
                    let task = tokio::spawn($run(settings, $listeners, async move {
                        let _ = rx.await;
                    }));
                    running.insert(
                        $name,
                        Running {
                            admin: $admin,
                            api: $api,
                            stop: Some(tx),
                            task: Some(task),
                        },
                    );
                }
            }};
        }
        use platform::service::{load, run};
        start!(
            ServiceName::User,
            load::<user_service::Service>,
            run::<user_service::Service>,
            user_l,
            user_grpc,
            user_admin
        );
        start!(
            ServiceName::Video,
            load::<video_service::Service>,
            run::<video_service::Service>,
            video_l,
            video_grpc,
            video_admin
        );
        start!(
            ServiceName::Engagement,
            load::<engagement_service::Service>,
            run::<engagement_service::Service>,
            eng_l,
            eng_grpc,
            eng_admin
        );
        start!(
            ServiceName::Payments,
            load::<payments_service::Service>,
            run::<payments_service::Service>,
            pay_l,
            pay_grpc,
            pay_admin
        );
        start!(
            ServiceName::Gateway,
            gateway::load_settings,
            gateway::run,
            gateway::Listeners {
                http: gateway_http,
                admin: gateway_admin
            },
            gw_http,
            gw_admin
        );

        let app = Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            db,
            s3,
            bucket,
            redis_prefix,
            redis_proxy,
            engagement_proxy,
            s3_proxy,
            identity: platform::identity::IdentityKey::new(
                &platform::config::InternalAuthSettings {
                    internal_token_secret: internal_secret.clone().into(),
                    allow_development_key: false,
                },
                "testkit",
            ),
            internal_token_secret: internal_secret,
            jwt_secret: sources
                .env
                .get("SOCIALFLOW__AUTH__JWT_SECRET")
                .cloned()
                .unwrap_or(jwt_secret),
            running,
            settings: sources.env.clone(),
        };
        for name in ServiceName::ALL {
            if app.running.contains_key(&name) {
                app.wait_until_ready(name).await;
            }
        }
        app
    }

    /// Polls `/health/readiness` on the admin port until 200 (30 s at most).
    pub async fn wait_until_ready(&self, name: ServiceName) {
        let url = format!("{}/health/readiness", self.admin_url(name));
        for _ in 0..300 {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name:?} never became ready");
    }

    /// The settings of this app's processes, as environment variables: for starting a
    /// binary that joins them ([`crate::process::ServiceProcess`]).
    pub fn settings_env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.running[&ServiceName::Gateway].api)
    }

    pub fn admin_url(&self, name: ServiceName) -> String {
        format!("http://{}", self.running[&name].admin)
    }

    /// The gRPC address of a service (the gateway's is its HTTP address).
    pub fn api_addr(&self, name: ServiceName) -> SocketAddr {
        self.running[&name].api
    }

    /// A gRPC channel to a service whose calls carry a valid internal identity token for
    /// `caller`, as the gateway's do.
    pub async fn service_channel(
        &self,
        name: ServiceName,
        caller: platform::identity::Caller,
    ) -> tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl tonic::service::Interceptor + Clone + use<>,
    > {
        self.channel_at(self.api_addr(name), caller).await
    }

    /// A gRPC channel to the service at `addr` (one of [`crate::process::ServiceProcess`],
    /// say), with the identity of `caller`.
    pub async fn channel_at(
        &self,
        addr: SocketAddr,
        caller: platform::identity::Caller,
    ) -> tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl tonic::service::Interceptor + Clone + use<>,
    > {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let token = self.identity.sign(caller);
        tonic::service::interceptor::InterceptedService::new(
            channel,
            move |mut request: tonic::Request<()>| {
                let value = token
                    .parse()
                    .map_err(|_| tonic::Status::internal("token"))?;
                request
                    .metadata_mut()
                    .insert(platform::identity::IDENTITY_HEADER, value);
                Ok(request)
            },
        )
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.gateway_url()))
            .send()
            .await
            .expect("gateway answers")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.gateway_url()))
            .json(body)
            .send()
            .await
            .expect("gateway answers")
    }

    pub async fn admin_get(&self, name: ServiceName, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.admin_url(name)))
            .send()
            .await
            .expect("admin port answers")
    }

    /// Inserts a video straight into video-service's schema (uploads are another feature).
    pub async fn insert_video(&self, title: &str, status: &str) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        self.db
            .connect()
            .await
            .execute(
                "INSERT INTO videos.videos (id, owner_id, title, description, duration_seconds, status, tags)
                 VALUES ($1, $2, $3, 'test video', 42, $4, ARRAY['test'])",
                &[&id, &uuid::Uuid::new_v4(), &title, &status],
            )
            .await
            .expect("insert video");
        id
    }

    /// Inserts an account straight into user-service's schema (no password: it cannot log
    /// in, but [`TestApp::access_token_for`] speaks for it). Registering through the API
    /// costs a password hash per account; tests that need many accounts use this.
    pub async fn insert_user(&self, username: &str) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        self.db
            .connect()
            .await
            .execute(
                "INSERT INTO users.users (id, email, username, display_name)
                 VALUES ($1, $2 || '@example.com', $2, $2 || ' display')",
                &[&id, &username],
            )
            .await
            .expect("insert user");
        id
    }

    /// An access token for `user`, signed as user-service signs them (valid 10 minutes).
    pub fn access_token_for(&self, user: uuid::Uuid) -> String {
        self.token_with_role(user, None)
    }

    /// An access token for `user` with the admin role.
    pub fn admin_token_for(&self, user: uuid::Uuid) -> String {
        self.token_with_role(user, Some("admin"))
    }

    fn token_with_role(&self, user: uuid::Uuid, role: Option<&str>) -> String {
        let now = chrono::Utc::now().timestamp();
        platform::jwt::sign(
            self.jwt_secret.as_bytes(),
            &platform::jwt::Claims {
                sub: user.to_string(),
                iat: now,
                exp: now + 600,
                jti: uuid::Uuid::new_v4().to_string(),
                role: role.map(str::to_owned),
            },
        )
    }

    /// Inserts a video of `owner` straight into video-service's schema, with a status and
    /// visibility (`public`, `unlisted`, `private`) and a length in seconds.
    pub async fn insert_owned_video(
        &self,
        owner: uuid::Uuid,
        status: &str,
        visibility: &str,
        duration_seconds: i32,
    ) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        self.db
            .connect()
            .await
            .execute(
                "INSERT INTO videos.videos
                    (id, owner_id, title, description, duration_seconds, status, visibility, tags)
                 VALUES ($1, $2, 'a video', 'test video', $3, $4, $5, ARRAY['test'])",
                &[&id, &owner, &duration_seconds, &status, &visibility],
            )
            .await
            .expect("insert video");
        id
    }

    /// Sets a video's counts in engagement-service's schema.
    pub async fn set_video_stats(&self, video_id: uuid::Uuid, views: i64, likes: i64) {
        self.db
            .connect()
            .await
            .execute(
                "INSERT INTO engagement.video_stats (video_id, views, likes) VALUES ($1, $2, $3)
                 ON CONFLICT (video_id) DO UPDATE SET views = $2, likes = $3",
                &[&video_id, &views, &likes],
            )
            .await
            .expect("insert stats");
    }

    /// A client of this app's object store, to look at what a test left in the bucket.
    pub fn s3_client(&self) -> platform::s3::S3Client {
        platform::s3::client(&self.s3.settings(&self.bucket))
    }

    /// Every object key in the app's bucket, and how many multipart uploads are still open.
    pub async fn bucket_contents(&self) -> (Vec<String>, usize) {
        let client = self.s3_client();
        let objects = client
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("list objects");
        let keys = objects
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        // s3s-fs does not list multipart uploads; it keeps each open one as a
        // `.upload-<id>.json` file beside the buckets.
        let open = std::fs::read_dir(self.s3.root())
            .expect("s3s-fs root")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload-"))
            .count();
        (keys, open)
    }

    /// Asks one process to shut down and waits until it has drained.
    pub async fn stop_service(&mut self, name: ServiceName) -> anyhow::Result<()> {
        let running = self.running.get_mut(&name).expect("known service");
        if let Some(stop) = running.stop.take() {
            let _ = stop.send(());
        }
        match running.task.take() {
            Some(task) => task.await.expect("service task joined"),
            None => Ok(()),
        }
    }

    /// Shuts every process down, gateway first, and checks each stopped cleanly.
    pub async fn shutdown(mut self) {
        let started: Vec<ServiceName> = ServiceName::ALL
            .into_iter()
            .filter(|n| self.running.contains_key(n))
            .collect();
        for name in started {
            self.stop_service(name)
                .await
                .unwrap_or_else(|e| panic!("{name:?} stopped with an error: {e:#}"));
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for running in self.running.values_mut() {
            if let Some(stop) = running.stop.take() {
                let _ = stop.send(());
            }
        }
        let prefix = self.redis_prefix.clone();
        // Leave nothing behind in the shared Redis either.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                use fred::prelude::*;
                let Ok(config) = Config::from_url(&redis_url()) else {
                    return;
                };
                let Ok(client) = Builder::from_config(config).build() else {
                    return;
                };
                if client.init().await.is_err() {
                    return;
                }
                let keys: Vec<String> = client
                    .custom(fred::cmd!("KEYS"), vec![format!("{prefix}*")])
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<i64, _> = client.del(keys).await;
                }
                let _ = client.quit().await;
            });
        })
        .join();
    }
}
