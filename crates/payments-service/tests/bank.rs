//! The bank test: 32 concurrent clients make thousands of random transfers between
//! creator accounts while the real payments-service process is killed with SIGKILL and
//! started again, several times. Every client retries with the same idempotency key until
//! it gets an answer. Afterwards: the money is all there, every transaction nets to zero,
//! every balance is the sum of its postings, and no transfer was applied twice.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use platform::config::{GrpcClientSettings, InternalAuthSettings};
use platform::identity::{Caller, IdentityKey};
use proto::common::v1::Money;
use proto::payments::v1::payments_service_client::PaymentsServiceClient;
use proto::payments::v1::{Idempotency, TransferRequest};
use testkit::TestDatabase;
use uuid::Uuid;

const CLIENTS: usize = 32;
const TRANSFERS_PER_CLIENT: usize = 70;
const ACCOUNTS: usize = 16;
const FUNDING: i64 = 10_000;

struct Service {
    child: Option<Child>,
    env: Vec<(String, String)>,
    admin: u16,
}

impl Service {
    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_payments-service"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("payments-service starts");
        self.child = Some(child);
    }

    /// SIGKILL: no drain, no goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{}/health/readiness", self.admin))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "payments-service never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

type Client = PaymentsServiceClient<platform::grpc::TracedChannel>;

/// Sends one transfer until it has an answer: Some(applied) or None (refused: funds).
async fn transfer(client: &Client, admin: Uuid, from: Uuid, to: Uuid, amount: i64) -> bool {
    let key = Uuid::new_v4().to_string();
    let mut fingerprint = format!("{from}{to}{amount}").into_bytes();
    fingerprint.truncate(64);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let request = Caller::Admin(admin).attach(TransferRequest {
            idempotency: Some(Idempotency {
                key: key.clone(),
                fingerprint: fingerprint.clone(),
            }),
            from_account: from.to_string(),
            to_account: to.to_string(),
            amount: Some(Money {
                amount_minor: amount,
                currency: "USD".into(),
            }),
        });
        match client.clone().transfer(request).await {
            Ok(_) => return true,
            Err(status)
                if status.code() == tonic::Code::FailedPrecondition
                    && platform::grpc::reason(&status).as_deref() == Some("INSUFFICIENT_FUNDS") =>
            {
                return false;
            }
            Err(status) => {
                // The process is down, restarting, or the key is still in flight: retry.
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::Aborted
                            | tonic::Code::Cancelled
                            | tonic::Code::DeadlineExceeded
                            | tonic::Code::Unknown
                            | tonic::Code::Internal
                    ),
                    "unexpected answer: {status:?}"
                );
                assert!(
                    Instant::now() < deadline,
                    "no answer for two minutes: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_sigkill_restarts_exactly_once_and_the_books_balance() {
    let db = TestDatabase::create().await;
    let secret = format!(
        "bank-test-{}-0123456789abcdef0123456789",
        testkit::unique_suffix()
    );
    let (grpc, admin_port) = (testkit::free_port(), testkit::free_port());
    let env: Vec<(String, String)> = [
        ("SOCIALFLOW_CONFIG_DIR", "/nonexistent".to_owned()),
        ("SOCIALFLOW__DATABASE__URL", db.url().to_owned()),
        ("SOCIALFLOW__DATABASE__MAX_CONNECTIONS", "8".to_owned()),
        ("SOCIALFLOW__SERVER__PORT", grpc.to_string()),
        ("SOCIALFLOW__SERVER__ADMIN_PORT", admin_port.to_string()),
        ("SOCIALFLOW__AUTH__INTERNAL_TOKEN_SECRET", secret.clone()),
        ("SOCIALFLOW__TELEMETRY__LOG_LEVEL", "error".to_owned()),
        ("SOCIALFLOW__TELEMETRY__OTLP_ENDPOINT", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut service = Service {
        child: None,
        env,
        admin: admin_port,
    };
    service.start();
    service.wait_ready().await;

    // Sixteen creator accounts, funded from the platform's revenue account.
    let pg = db.connect().await;
    let platform = Uuid::new_v4();
    pg.execute(
        "INSERT INTO payments.accounts (id, kind, currency) VALUES ($1, 'platform_revenue', 'USD')",
        &[&platform],
    )
    .await
    .expect("platform account");
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let id = Uuid::new_v4();
        pg.execute(
            "INSERT INTO payments.accounts (id, kind, owner_id, currency)
             VALUES ($1, 'creator_balance', $2, 'USD')",
            &[&id, &Uuid::new_v4()],
        )
        .await
        .expect("creator account");
        accounts.push(id);
    }
    let identity = IdentityKey::new(
        &InternalAuthSettings {
            internal_token_secret: secret.into(),
            allow_development_key: false,
        },
        "gateway",
    );
    let channel = platform::grpc::channel(
        &format!("http://127.0.0.1:{grpc}"),
        "test",
        &identity,
        &GrpcClientSettings {
            timeout_ms: 3000,
            timeouts: Vec::new(),
            // The process is killed on purpose: keep calling it.
            breaker: platform::breaker::BreakerSettings {
                min_calls: usize::MAX,
                ..Default::default()
            },
        },
    )
    .expect("channel");
    let client = PaymentsServiceClient::new(channel);
    let admin = Uuid::new_v4();
    for account in &accounts {
        assert!(transfer(&client, admin, platform, *account, FUNDING).await);
    }

    // The clients, and a killer.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, accounts) = (client.clone(), accounts.clone());
        tasks.push(tokio::spawn(async move {
            let mut applied: Vec<(Uuid, Uuid, i64)> = Vec::new();
            let mut seed = (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            for _ in 0..TRANSFERS_PER_CLIENT {
                let from = accounts[(next() % ACCOUNTS as u64) as usize];
                let mut to = accounts[(next() % ACCOUNTS as u64) as usize];
                if to == from {
                    to = accounts
                        [(accounts.iter().position(|a| *a == from).unwrap_or(0) + 1) % ACCOUNTS];
                }
                let amount = 1 + (next() % 3_000) as i64;
                if transfer(&client, admin, from, to, amount).await {
                    applied.push((from, to, amount));
                }
            }
            applied
        }));
    }
    let killer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut kills = 0;
            while kills < 4 && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(600)).await;
                service.kill();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                service.start();
                service.wait_ready().await;
            }
            (service, kills)
        })
    };
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.expect("client"));
    }
    stop.store(true, Ordering::Relaxed);
    let (service, kills) = killer.await.expect("killer");
    assert!(kills >= 1, "the process was killed while transfers ran");

    // The books: what each account should hold, from what the clients were told.
    let mut expected: HashMap<Uuid, i64> = accounts.iter().map(|a| (*a, -FUNDING)).collect();
    for (from, to, amount) in &applied {
        *expected.entry(*from).or_default() += amount;
        *expected.entry(*to).or_default() -= amount;
    }
    for account in &accounts {
        let balance: i64 = pg
            .query_one(
                "SELECT balance FROM payments.accounts WHERE id = $1",
                &[account],
            )
            .await
            .expect("balance")
            .get(0);
        assert_eq!(balance, expected[account], "account {account}");
        assert!(balance <= 0, "a creator account never goes below zero");
    }
    let total: i64 = pg
        .query_one(
            "SELECT sum(balance)::bigint FROM payments.accounts WHERE kind = 'creator_balance'",
            &[],
        )
        .await
        .expect("sum")
        .get(0);
    assert_eq!(total, -FUNDING * ACCOUNTS as i64, "no money made or lost");
    let transfers: i64 = pg
        .query_one(
            "SELECT count(*) FROM payments.journal WHERE kind = 'transfer'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        transfers,
        (ACCOUNTS + applied.len()) as i64,
        "each applied once"
    );
    let twice: i64 = pg
        .query_one(
            "SELECT count(*) FROM (SELECT reference FROM payments.journal WHERE kind = 'transfer'
             GROUP BY reference HAVING count(*) > 1) t",
            &[],
        )
        .await
        .expect("duplicates")
        .get(0);
    assert_eq!(twice, 0, "no key applied twice");
    let imbalance: i64 = pg
        .query_one(
            "SELECT
               (SELECT count(*) FROM (SELECT 1 FROM payments.postings
                  GROUP BY journal_id, currency HAVING sum(amount) <> 0) t)
             + (SELECT count(*) FROM payments.accounts a
                  WHERE a.balance <> coalesce((SELECT sum(p.amount) FROM payments.postings p
                                               WHERE p.account_id = a.id), 0))",
            &[],
        )
        .await
        .expect("imbalance")
        .get(0);
    assert_eq!(imbalance, 0);
    assert!(
        applied.len() > CLIENTS * TRANSFERS_PER_CLIENT / 2,
        "most transfers applied: {}",
        applied.len()
    );
    drop(service);
}
