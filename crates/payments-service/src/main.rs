fn main() -> std::process::ExitCode {
    platform::service::main::<payments_service::Service>()
}
