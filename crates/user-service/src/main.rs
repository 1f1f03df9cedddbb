fn main() -> std::process::ExitCode {
    platform::service::main::<user_service::Service>()
}
