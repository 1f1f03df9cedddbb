use std::process::ExitCode;

fn main() -> ExitCode {
    platform::process::run_main(
        gateway::SERVICE,
        gateway::Settings::load,
        |s| &s.telemetry,
        |settings, shutdown| async move {
            let listeners = gateway::Listeners::bind(&settings.server)?;
            gateway::run(settings, listeners, shutdown).await
        },
    )
}
