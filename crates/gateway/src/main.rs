use std::process::ExitCode;

use platform::config::Sources;
use platform::process::ProcessSettings;

fn main() -> ExitCode {
    platform::process::run_main(
        gateway::SERVICE,
        || gateway::load_settings(&Sources::from_process()),
        |s| s.telemetry(),
        |settings, shutdown| async move {
            let listeners = gateway::Listeners::bind(settings.server())?;
            gateway::run(settings, listeners, shutdown).await
        },
    )
}
