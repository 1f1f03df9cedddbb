use platform::process::ProcessSettings;

fn main() -> std::process::ExitCode {
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
