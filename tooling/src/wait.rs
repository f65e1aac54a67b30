//! Waiting for something outside the process (an engine, a container, a
//! port) to reach a state: one bounded polling loop for every such wait.

use std::time::{Duration, Instant};

/// One look at the thing waited for.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; what was seen, for the error when the bound passes.
    Waiting(String),
}

/// Looks every `interval` until `look` says ready, fails, or `bound` has
/// passed since the first look. A timeout's error names what was last seen.
pub fn until<T>(
    bound: Duration,
    interval: Duration,
    mut look: impl FnMut() -> anyhow::Result<Poll<T>>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    loop {
        match look()? {
            Poll::Ready(value) => return Ok(value),
            Poll::Waiting(seen) => {
                if started.elapsed() >= bound {
                    anyhow::bail!(
                        "still waiting after {} (last: {seen})",
                        crate::output::duration(bound)
                    );
                }
            }
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_ready() {
        let mut looks = 0;
        let value = until(Duration::from_secs(5), Duration::from_millis(1), || {
            looks += 1;
            Ok(if looks == 3 {
                Poll::Ready(looks)
            } else {
                Poll::Waiting(format!("look {looks}"))
            })
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn a_timeout_names_what_was_last_seen() {
        let error = until::<()>(Duration::from_millis(20), Duration::from_millis(5), || {
            Ok(Poll::Waiting("status 503".into()))
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "still waiting after 20 ms (last: status 503)"
        );
    }

    #[test]
    fn an_error_ends_the_wait_at_once() {
        let error = until::<()>(Duration::from_mins(1), Duration::from_millis(1), || {
            anyhow::bail!("the container exited")
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "the container exited");
    }
}
