/// The allocator of the whole process (docs/performance.md: cheaper cross-thread frees).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    platform::service::main::<payments_service::Service>()
}
