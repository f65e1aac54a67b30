//! `server --health-check`: asks a running server's `GET /health` over
//! loopback, for a container HEALTHCHECK in an image that has no curl. Plain
//! std networking, so the probe costs no extra dependency.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Docker's own default probe timeout is 30 s; answering well within it
/// keeps a hung server from stacking up probes.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Prints one line saying why, and returns 0 when healthy, 1 otherwise.
pub fn run(listen_addr: SocketAddr) -> ExitCode {
    let target = probe_target(listen_addr);
    match probe(target, TIMEOUT) {
        Ok(()) => {
            println!("healthy: GET /health on {target} answered 200");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// A server listening on every address is reached over loopback; one bound
/// to a single address only there.
fn probe_target(listen_addr: SocketAddr) -> SocketAddr {
    let ip = match listen_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen_addr.port())
}

fn probe(target: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| format!("no answer from {target} within {} ms", timeout.as_millis()))
    };
    let mut stream = TcpStream::connect_timeout(&target, remaining()?)
        .map_err(|error| format!("cannot connect to {target}: {error}"))?;
    stream
        .set_write_timeout(Some(remaining()?))
        .and_then(|()| {
            write!(
                stream,
                "GET /health HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
            )
        })
        .map_err(|error| format!("cannot send the request to {target}: {error}"))?;

    // Only the status line matters.
    let mut head = Vec::with_capacity(128);
    let mut buffer = [0; 128];
    while !head.windows(2).any(|pair| pair == b"\r\n") && head.len() < 1024 {
        stream
            .set_read_timeout(Some(remaining()?))
            .map_err(|error| format!("cannot read from {target}: {error}"))?;
        let read = stream
            .read(&mut buffer)
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    format!("no answer from {target} within {} ms", timeout.as_millis())
                }
                _ => format!("cannot read from {target}: {error}"),
            })?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default();
    match status_line.split(' ').nth(1) {
        Some("200") => Ok(()),
        Some(_) => Err(format!("GET /health on {target} answered {status_line:?}")),
        None => Err(format!(
            "GET /health on {target} got no HTTP answer ({status_line:?})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_probed_over_loopback() {
        let v4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(probe_target(v4).to_string(), "127.0.0.1:8080");
        assert_eq!(probe_target(v6).to_string(), "[::1]:8080");
    }

    #[test]
    fn a_specific_address_is_probed_where_it_listens() {
        let addr: SocketAddr = "127.0.0.2:9000".parse().unwrap();
        assert_eq!(probe_target(addr), addr);
    }
}
