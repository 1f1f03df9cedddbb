use std::process::ExitCode;

fn main() -> ExitCode {
    platform::process::run_main(
        user_service::SERVICE,
        user_service::Settings::load,
        |s| &s.telemetry,
        |settings, shutdown| async move {
            let listeners = platform::grpc::Listeners::bind(&settings.server).await?;
            user_service::run(settings, listeners, shutdown).await
        },
    )
}
