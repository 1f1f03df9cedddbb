fn main() -> std::process::ExitCode {
    platform::process::run_grpc_main(
        payments_service::SERVICE,
        payments_service::load_settings,
        payments_service::run,
    )
}
