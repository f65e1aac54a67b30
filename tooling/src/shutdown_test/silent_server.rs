//! A listener on the host's loopback that accepts connections and never
//! answers them: what a health check must give up on within its timeout.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Accepts connections on the host's loopback and never answers them.
pub struct SilentServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: thread::JoinHandle<()>,
}

impl SilentServer {
    pub fn start(bound: Duration) -> anyhow::Result<SilentServer> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot open a loopback listener")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
            thread::spawn(move || {
                let until = Instant::now() + bound;
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                    if let Ok((stream, _)) = listener.accept() {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        held.push(stream);
                    } else {
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        };
        Ok(SilentServer {
            addr,
            stop,
            accepted,
            thread,
        })
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}
