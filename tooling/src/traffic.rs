//! Clients on loopback, as threads: each worker sends one request at a
//! time until it is told to stop, the run's deadline passes or the run has
//! sent its count, and keeps what each request came to. The drain's short
//! stream, the rollout's load and `server-load` configure it with what a
//! request is; the bounds and the threads are kept here, once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long and how much the workers send, together.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub workers: usize,
    /// The workers stop by themselves after this long…
    pub max_duration: Duration,
    /// …or once this many requests have gone out, all workers together.
    pub max_requests: usize,
}

/// Workers running in the background; stopped and joined when dropped.
pub struct Workers<R> {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<R>>>,
}

impl<R: Send + 'static> Workers<R> {
    /// Starts `bounds.workers` threads. `worker(index)` makes one worker's
    /// request: it sends one, and says what it came to and how long to
    /// pause before the next (a worker's first pause may come first, as a
    /// stagger, by making its request sleep).
    pub fn start<W>(bounds: Bounds, mut worker: impl FnMut(usize) -> W) -> Workers<R>
    where
        W: FnMut() -> (R, Duration) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        // Claimed by each request before it goes out; past the bound, a
        // claim sends nothing.
        let claimed = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let threads = (0..bounds.workers)
            .map(|index| {
                let mut request = worker(index);
                let (stop, claimed) = (Arc::clone(&stop), Arc::clone(&claimed));
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::SeqCst)
                        && started.elapsed() < bounds.max_duration
                        && claimed.fetch_add(1, Ordering::SeqCst) < bounds.max_requests
                    {
                        let (outcome, pause) = request();
                        seen.push(outcome);
                        std::thread::sleep(pause);
                    }
                    seen
                })
            })
            .collect();
        Workers { stop, threads }
    }

    /// Stops the workers, waits for the requests in flight, and returns
    /// what every request came to, worker by worker.
    pub fn finish(self) -> Vec<R> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Waits for the workers to reach their bounds, and returns what every
    /// request came to, worker by worker.
    pub fn join(mut self) -> Vec<R> {
        self.threads
            .drain(..)
            .flat_map(|thread| thread.join().unwrap_or_default())
            .collect()
    }
}

impl<R> Drop for Workers<R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The pause that keeps a worker at `per_second` requests, after a
/// request that took `took`.
pub fn pause_for_rate(per_second: u32, took: Duration) -> Duration {
    (Duration::from_secs(1) / per_second.max(1)).saturating_sub(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_stops_at_its_count_across_workers() {
        let bounds = Bounds {
            workers: 3,
            max_duration: Duration::from_secs(10),
            max_requests: 10,
        };
        let seen = Workers::start(bounds, |index| move || (index, Duration::ZERO)).join();
        assert_eq!(seen.len(), 10, "{seen:?}");
    }

    #[test]
    fn finish_stops_workers_that_would_run_for_long() {
        let bounds = Bounds {
            workers: 2,
            max_duration: Duration::from_mins(1),
            max_requests: usize::MAX,
        };
        let workers = Workers::start(bounds, |_| || ((), Duration::from_millis(5)));
        let started = Instant::now();
        let seen = workers.finish();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(seen.len() < 1000, "{}", seen.len());
    }

    #[test]
    fn a_rate_is_a_pause_less_what_the_request_took() {
        assert_eq!(
            pause_for_rate(10, Duration::from_millis(30)),
            Duration::from_millis(70)
        );
        assert_eq!(pause_for_rate(10, Duration::from_secs(1)), Duration::ZERO);
    }
}
