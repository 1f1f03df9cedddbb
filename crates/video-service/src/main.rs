use std::process::ExitCode;

fn main() -> ExitCode {
    platform::process::run_main(
        video_service::SERVICE,
        video_service::Settings::load,
        |s| &s.telemetry,
        |settings, shutdown| async move {
            let listeners = platform::grpc::Listeners::bind(&settings.server).await?;
            video_service::run(settings, listeners, shutdown).await
        },
    )
}
