//! Captures the JSON log lines of the test process.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// A shared in-memory log sink; set `SOCIALFLOW_TEST_LOG=1` to also echo to stderr.
#[derive(Clone, Default)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Every line written so far, parsed. A line that is not JSON fails the test.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    /// Everything written so far, raw.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().expect("log lock")).into_owned()
    }
}

pub struct Writer {
    buffer: Arc<Mutex<Vec<u8>>>,
    echo: bool,
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.echo {
            let _ = std::io::stderr().write_all(buf);
        }
        self.buffer.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = Writer;

    fn make_writer(&'a self) -> Self::Writer {
        Writer {
            buffer: self.buffer.clone(),
            echo: std::env::var_os("SOCIALFLOW_TEST_LOG").is_some(),
        }
    }
}
