//! The one HTTP/1.1 client of these tests, over std's `TcpStream`: whole
//! requests for the usual case, and the building blocks (raw bytes, a head
//! written as given, a body left half-sent, a read that tells a close from
//! silence) for tests of what the server does with misbehaving clients.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bounds every connect, read and write, so a stuck server fails a test
/// instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The end of a `Transfer-Encoding: chunked` body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.text()))
    }
}

/// A connection with [`IO_TIMEOUT`] on every operation, for callers that
/// expect the server may refuse it.
pub fn try_connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    try_connect(addr).expect("connect to the server")
}

/// True when a connection attempt fails within 200 ms: the server has
/// closed its listener.
pub fn refuses_connections(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
}

/// A request head with `Host` and exactly `headers`: no `Content-Length` is
/// added, so a test can declare any length, or none.
pub fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head
}

/// One chunk of a `Transfer-Encoding: chunked` body.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    chunk
}

/// Writes raw bytes: a whole request, or on purpose only part of one.
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream
        .write_all(bytes)
        .unwrap_or_else(|error| panic!("send to the server: {error}"));
}

/// Writes a request, with `Content-Length` when there is a body (always
/// for `POST`, which the server requires).
fn write_request(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let length = body.len().to_string();
    let mut headers = headers.to_vec();
    if !body.is_empty() || method == "POST" {
        headers.push(("Content-Length", &length));
    }
    stream.write_all(head(method, path, &headers).as_bytes())?;
    stream.write_all(body)
}

/// Starts a JSON `POST` that declares `declared_length` body bytes but sends
/// only `sent`, so the server holds the request in flight until the rest
/// comes (or its timeout passes).
pub fn start_json_upload(
    addr: SocketAddr,
    path: &str,
    declared_length: usize,
    sent: &[u8],
) -> TcpStream {
    let mut stream = connect(addr);
    let length = declared_length.to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", length.as_str()),
    ];
    send(&mut stream, head("POST", path, &headers).as_bytes());
    send(&mut stream, sent);
    stream
}

/// A `GET` on a connection that stays open: for keep-alive, and for a
/// server that takes no new connection.
pub fn get_on(stream: &mut TcpStream, path: &str) -> Response {
    write_request(stream, "GET", path, &[], b"")
        .and_then(|()| read_response(stream))
        .unwrap_or_else(|error| panic!("GET {path}: {error}"))
}

/// One request on a fresh connection, closed afterwards.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
}

/// As [`request`], for callers that expect the server may be gone.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut headers = headers.to_vec();
    headers.push(("Connection", "close"));
    let mut stream = try_connect(addr)?;
    write_request(&mut stream, method, path, &headers, body)?;
    read_response(&mut stream)
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

pub fn delete(addr: SocketAddr, path: &str) -> Response {
    request(addr, "DELETE", path, &[], b"")
}

pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// The value of the `/metrics` sample named exactly `name` (labels
/// included), read on a fresh connection.
pub fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    get(addr, "/metrics").text().lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Reads one response, leaving the connection usable for the next one.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    if reader.read_line(&mut status_line)? == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().map_err(std::io::Error::other)?;
        response.body.resize(length, 0);
        reader.read_exact(&mut response.body)?;
    } else if response
        .header("transfer-encoding")
        .is_some_and(|encoding| encoding.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// What one read on a connection saw: how a test tells a connection the
/// server closed from one it holds without answering.
#[derive(Debug, PartialEq, Eq)]
pub enum Arrival {
    /// The server sent something.
    Bytes,
    /// End of stream or a reset: the server closed the connection.
    Closed,
    /// Nothing within the wait: the connection is held, unanswered.
    Silence,
    Failed(ErrorKind),
}

/// Waits up to `within` for the server to send or close, then restores
/// [`IO_TIMEOUT`] for the reads that follow.
pub fn wait_for_arrival(stream: &mut TcpStream, within: Duration) -> Arrival {
    stream.set_read_timeout(Some(within)).unwrap();
    let read = stream.read(&mut [0; 256]);
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    match read {
        Ok(0) => Arrival::Closed,
        Ok(_) => Arrival::Bytes,
        Err(error) => match error.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                Arrival::Closed
            }
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Arrival::Silence,
            other => Arrival::Failed(other),
        },
    }
}
