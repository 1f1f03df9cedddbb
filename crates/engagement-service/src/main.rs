fn main() -> std::process::ExitCode {
    platform::service::main::<engagement_service::Service>()
}
