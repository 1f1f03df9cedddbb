fn main() -> std::process::ExitCode {
    platform::process::run_grpc_main(
        engagement_service::SERVICE,
        engagement_service::load_settings,
        engagement_service::run,
    )
}
