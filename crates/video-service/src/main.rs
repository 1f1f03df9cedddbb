fn main() -> std::process::ExitCode {
    platform::process::run_grpc_main(
        video_service::SERVICE,
        video_service::load_settings,
        video_service::run,
    )
}
