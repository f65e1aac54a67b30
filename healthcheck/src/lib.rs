//! The probe behind both health checks: `GET <path>` on a loopback port,
//! answered 2xx or not, with nothing but std. The image's `healthcheck`
//! binary asks it for any service; the reference server's `--health-check`
//! asks it too, so there is one HTTP probe to keep right.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Asks `GET path` on `addr`, giving up after `timeout`.
///
/// # Errors
///
/// One line saying why not, for anything but a 2xx answer: no connection,
/// no answer in time, another status, or an answer that is not HTTP.
pub fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| format!("no answer from {addr} within {} ms", timeout.as_millis()))
    };
    let mut stream = TcpStream::connect_timeout(&addr, remaining()?)
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream
        .set_write_timeout(Some(remaining()?))
        .and_then(|()| {
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: healthcheck\r\nConnection: close\r\n\r\n"
            )
        })
        .map_err(|error| format!("cannot send GET {path} to {addr}: {error}"))?;

    // Only the status line matters.
    let mut head = Vec::with_capacity(128);
    let mut buffer = [0; 128];
    while !head.windows(2).any(|pair| pair == b"\r\n") && head.len() < 1024 {
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(|error| format!("cannot read from {addr}: {error}"))?;
        let read = stream
            .read(&mut buffer)
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    format!("no answer from {addr} within {} ms", timeout.as_millis())
                }
                _ => format!("cannot read from {addr}: {error}"),
            })?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if (200..300).contains(&code) => Ok(format!("GET {path} on {addr}: {code}")),
        Some(code) => Err(format!("GET {path} on {addr}: status {code}")),
        None => Err(format!(
            "GET {path} on {addr} got no HTTP answer ({status_line:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server on loopback that answers with `status_line`. It
    /// reads the whole request head first and the client's close last, so
    /// that closing never resets the connection under the probe's read.
    fn answering(status_line: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = write!(stream, "{status_line}\r\nContent-Length: 0\r\n\r\n");
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.read_to_end(&mut Vec::new());
        });
        addr
    }

    #[test]
    fn a_2xx_is_healthy_and_anything_else_says_what_answered() {
        let timeout = Duration::from_secs(5);
        let ok = probe(answering("HTTP/1.1 204 No Content"), "/livez", timeout).unwrap();
        assert!(
            ok.starts_with("GET /livez on 127.0.0.1:") && ok.ends_with(": 204"),
            "{ok}"
        );
        let unready = probe(answering("HTTP/1.1 503 Service Unavailable"), "/", timeout);
        assert!(unready.unwrap_err().ends_with("status 503"));
        let garbage = probe(answering("SSH-2.0-OpenSSH"), "/", timeout);
        assert!(garbage.unwrap_err().contains("no HTTP answer"));
    }

    #[test]
    fn nothing_listening_is_unhealthy_not_a_hang() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = probe(addr, "/", Duration::from_secs(2)).unwrap_err();
        assert!(error.starts_with("cannot connect to 127.0.0.1:"), "{error}");
    }
}
