//! `server --health-check`: asks a running server's `GET /health` over
//! loopback, for a container HEALTHCHECK in an image that has no curl,
//! through the same std-only probe as the image's `healthcheck`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// Docker's own default probe timeout is 30 s; answering well within it
/// keeps a hung server from stacking up probes.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Prints one line saying why, and returns 0 when healthy, 1 otherwise.
pub fn run(listen_addr: SocketAddr) -> ExitCode {
    let target = probe_target(listen_addr);
    match healthcheck::probe(target, "/health", TIMEOUT) {
        Ok(said) => {
            println!("healthy: {said}");
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
