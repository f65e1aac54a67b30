//! Traffic for proving a server: a blocking HTTP client for loopback
//! ([`http`]), and the drain's traffic ([`drain`]). Threads and blocking
//! sockets, no async runtime; every loop is bounded in count and time.

pub mod drain;
pub mod http;
