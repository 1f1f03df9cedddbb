//! Log lines reach stdout from a thread of their own: a request never waits on the write
//! (nor on a reader of stdout that has stopped reading). Lines queue up to
//! [`QUEUE_LINES`]; past that they are dropped and counted in `log_lines_dropped_total`,
//! never blocking the process. The thread takes what is queued every 10 ms and writes it
//! through a buffer in one go (it polls: waiting on the queue, it would be woken by every
//! line, a context switch per request).
//! [`flush`] (called when telemetry shuts down) writes out what is queued, and lines
//! logged after it are written directly.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines held while the writer thread catches up (about 4 MiB of typical lines; 10 ms of
/// 1.6 million lines a second).
pub const QUEUE_LINES: usize = 16_384;

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

struct Shared {
    queue: SyncSender<Message>,
    /// After [`flush`]: no thread to hand lines to any more, write them here and now.
    direct: AtomicBool,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The `MakeWriter` of the process's log lines.
#[derive(Clone, Copy)]
pub struct NonBlockingStdout;

impl NonBlockingStdout {
    /// Starts the writer thread (once per process; later calls share it).
    pub fn start() -> Self {
        SHARED.get_or_init(|| {
            let (queue, lines) = sync_channel(QUEUE_LINES);
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || write_lines(&lines))
                .expect("the log writer thread starts");
            Shared {
                queue,
                direct: AtomicBool::new(false),
            }
        });
        Self
    }
}

/// How often the thread looks for lines. It polls rather than waits on the queue: a
/// waiting receiver would be woken by every line, a context switch per request.
const POLL: Duration = Duration::from_millis(10);

fn write_lines(lines: &Receiver<Message>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    loop {
        loop {
            match lines.try_recv() {
                Ok(Message::Line(line)) => {
                    let _ = out.write_all(&line);
                }
                Ok(Message::Flush(done)) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
        std::thread::sleep(POLL);
    }
}

/// Writes out every queued line (waiting at most 2 s) and switches to direct writes.
pub fn flush() {
    let Some(shared) = SHARED.get() else { return };
    let (done, flushed) = sync_channel(1);
    if shared.queue.send(Message::Flush(done)).is_ok() {
        let _ = flushed.recv_timeout(Duration::from_secs(2));
    }
    shared.direct.store(true, Ordering::Release);
}

pub struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(shared) = SHARED.get() else {
            return std::io::stdout().write(buf);
        };
        if shared.direct.load(Ordering::Acquire) {
            return std::io::stdout().lock().write(buf);
        }
        match shared.queue.try_send(Message::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!(crate::metrics::LOG_LINES_DROPPED_TOTAL).increment(1);
            }
            // The thread is gone (it cannot be, short of a panic): write here.
            Err(TrySendError::Disconnected(_)) => {
                return std::io::stdout().lock().write(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for NonBlockingStdout {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter
    }
}
