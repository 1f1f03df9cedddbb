//! A TCP proxy a test can cut, to make a dependency unreachable mid-test, or slow down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// While set, connections are refused (accepted and closed at once).
    down: Arc<AtomicBool>,
    /// Bumped to close every open connection.
    cuts: watch::Sender<u64>,
    delay_ms: Arc<AtomicU64>,
}

impl TcpProxy {
    /// Forwards 127.0.0.1:<new port> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (stop, stopped) = watch::channel(false);
        let (cuts, cut) = watch::channel(0u64);
        let down = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        let refusing = down.clone();
        tokio::spawn(async move {
            let mut stopped_accept = stopped.clone();
            loop {
                tokio::select! {
                    _ = stopped_accept.changed() => return,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        if refusing.load(Ordering::SeqCst) {
                            drop(client);
                            continue;
                        }
                        let stopped = stopped.clone();
                        // Only cuts after this connection opened close it.
                        let mut cut = cut.clone();
                        cut.borrow_and_update();
                        let delay = delay.clone();
                        tokio::spawn(async move {
                            let Ok(upstream) = TcpStream::connect(target).await else { return };
                            pipe(client, upstream, stopped, cut, delay).await;
                        });
                    }
                }
            }
        });
        Self {
            addr,
            stop,
            down,
            cuts,
            delay_ms,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every open connection: the target looks down.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Makes the target unreachable until [`TcpProxy::restore`]: open connections are
    /// closed, new ones refused.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Makes the target reachable again after [`TcpProxy::cut`].
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// Holds every chunk going to the target for `delay` before forwarding it.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn pipe(
    client: TcpStream,
    upstream: TcpStream,
    mut stopped: watch::Receiver<bool>,
    mut cut: watch::Receiver<u64>,
    delay: Arc<AtomicU64>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let to_upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let ms = delay.load(Ordering::SeqCst);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if upstream_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let to_client = async {
        let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
    };
    tokio::select! {
        _ = stopped.changed() => {}
        _ = cut.changed() => {}
        () = to_upstream => {}
        () = to_client => {}
    }
}
