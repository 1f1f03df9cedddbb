fn main() -> std::process::ExitCode {
    platform::process::run_grpc_main(
        user_service::SERVICE,
        user_service::load_settings,
        user_service::run,
    )
}
