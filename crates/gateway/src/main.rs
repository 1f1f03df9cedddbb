use platform::process::ProcessSettings;

/// The allocator of the whole process (docs/performance.md: cheaper cross-thread frees).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // `gateway openapi`: the REST API's OpenAPI document, as `/api/v1/openapi.json` serves it.
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        return match gateway::openapi_document().to_pretty_json() {
            Ok(json) => {
                println!("{json}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("the OpenAPI document does not serialise: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    platform::process::run_main(
        gateway::SERVICE,
        &[env!("CARGO_CRATE_NAME")],
        gateway::load_settings,
        |settings, shutdown| async move {
            let listeners = gateway::Listeners::bind(settings.server())?;
            gateway::run(settings, listeners, shutdown).await
        },
    )
}
