use std::process::ExitCode;

fn main() -> ExitCode {
    platform::process::run_main(
        payments_service::SERVICE,
        payments_service::Settings::load,
        |s| &s.telemetry,
        |settings, shutdown| async move {
            let listeners = platform::grpc::Listeners::bind(&settings.server).await?;
            payments_service::run(settings, listeners, shutdown).await
        },
    )
}
