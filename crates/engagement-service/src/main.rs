use std::process::ExitCode;

fn main() -> ExitCode {
    platform::process::run_main(
        engagement_service::SERVICE,
        engagement_service::Settings::load,
        |s| &s.telemetry,
        |settings, shutdown| async move {
            let listeners = platform::grpc::Listeners::bind(&settings.server).await?;
            engagement_service::run(settings, listeners, shutdown).await
        },
    )
}
