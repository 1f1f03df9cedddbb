//! The baseline of `make bench`: actix-web with one JSON handler and no middleware, built
//! with the same profile as the gateway and pinned the same way, so the gateway's cost of
//! being observable is measured against what the bare framework does on the same core.
//!
//! `bare-actix --port 18080 [--workers 1]`: `GET /health` answers `{"status":"ok"}`.

use actix_web::{App, HttpResponse, HttpServer, web};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The allocator of the whole process (the same as the gateway's: the same build but for the middleware).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(18080);
    let workers: usize = arg("--workers").and_then(|w| w.parse().ok()).unwrap_or(1);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new().route(
                "/health",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("application/json")
                        .body(r#"{"status":"ok"}"#)
                }),
            )
        })
        .workers(workers)
        .bind(("127.0.0.1", port))?
        .run()
        .await
    })
}
