fn main() -> std::process::ExitCode {
    platform::service::main::<video_service::Service>()
}
