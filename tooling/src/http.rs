//! A small blocking HTTP/1.1 client for talking to a container through a
//! port published on the loopback interface. One connection per request
//! (`Connection: close`), so a request's fate never depends on another's;
//! for load, [`KeepAlive`] reuses one.
//!
//! Uploads announce `Expect: 100-continue` and wait for the server's
//! `100 Continue` before sending the body. That answer is the proof that the
//! server took the request: through docker's port proxy a connection is
//! always accepted, even when nothing listens behind it, so without the
//! interim answer a request the server never saw and one it dropped would
//! look the same.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request got no final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The server showed it had the request (an interim or partial answer)
    /// before it failed: a request it dropped, not one it never took.
    pub accepted: bool,
    pub reason: String,
}

impl Failure {
    fn before_acceptance(what: &str, error: &io::Error) -> Failure {
        Failure {
            accepted: false,
            reason: format!("{what}: {}", describe(error)),
        }
    }

    fn after_acceptance(what: &str, error: &io::Error) -> Failure {
        Failure {
            accepted: true,
            reason: format!("{what}: {}", describe(error)),
        }
    }
}

fn describe(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::UnexpectedEof => "connection closed".to_owned(),
        _ => error.to_string(),
    }
}

/// Talks to one loopback address.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    /// Bound on each connect, read and write.
    pub timeout: Duration,
}

impl Client {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client { addr, timeout }
    }

    pub fn get(&self, path: &str) -> Result<Response, Failure> {
        let mut stream = self.connect()?;
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream
            .write_all(head.as_bytes())
            .map_err(|e| Failure::before_acceptance("sending the request", &e))?;
        let mut reader = BufReader::new(stream);
        read_final(&mut reader, false)
    }

    /// Starts a GET and holds it just short of complete.
    pub fn hold_get(&self, path: &str) -> Result<HeldRequest, Failure> {
        let mut stream = self.connect()?;
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        stream
            .write_all(head.as_bytes())
            .map_err(|e| Failure::before_acceptance("sending the request head", &e))?;
        Ok(HeldRequest { stream })
    }

    /// A POST of a JSON body, sent once the server has taken the request.
    pub fn post_json(&self, path: &str, body: &str) -> Result<Response, Failure> {
        self.post(path, "application/json", body)
    }

    pub fn post(&self, path: &str, content_type: &str, body: &str) -> Result<Response, Failure> {
        match self.begin_upload(path, content_type, body.len())? {
            Started::Answered(response) => Ok(response),
            Started::Continue(mut upload) => {
                upload.send(body.as_bytes())?;
                upload.finish()
            }
        }
    }

    /// Sends the head of an upload of `length` bytes and waits for the
    /// server to take it.
    pub fn begin_upload(
        &self,
        path: &str,
        content_type: &str,
        length: usize,
    ) -> Result<Started, Failure> {
        let mut stream = self.connect()?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream
            .write_all(head.as_bytes())
            .map_err(|e| Failure::before_acceptance("sending the request head", &e))?;
        let reader = stream
            .try_clone()
            .map_err(|e| Failure::before_acceptance("cloning the socket", &e))?;
        let mut reader = BufReader::new(reader);
        match read_head(&mut reader) {
            Ok(Some(head)) if head.status == 100 => Ok(Started::Continue(Upload {
                stream,
                reader,
                remaining: length,
            })),
            Ok(Some(head)) => {
                let body = read_body(&mut reader, &head)
                    .map_err(|e| Failure::after_acceptance("reading the answer", &e))?;
                Ok(Started::Answered(head.into_response(body)))
            }
            Ok(None) => Err(Failure {
                accepted: false,
                reason: "connection closed before the server took the request".to_owned(),
            }),
            Err(e) => Err(Failure::before_acceptance("waiting for 100 Continue", &e)),
        }
    }

    fn connect(&self) -> Result<TcpStream, Failure> {
        let stream = TcpStream::connect_timeout(&self.addr, self.timeout)
            .map_err(|e| Failure::before_acceptance("connecting", &e))?;
        let configure = || -> io::Result<()> {
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            stream.set_nodelay(true)
        };
        configure().map_err(|e| Failure::before_acceptance("configuring the socket", &e))?;
        Ok(stream)
    }
}

/// One kept-alive connection, for load: whole requests one after another
/// on the same socket, a new one after a failure or when the server says
/// `Connection: close`.
pub struct KeepAlive {
    client: Client,
    connection: Option<BufReader<TcpStream>>,
}

impl KeepAlive {
    pub fn new(client: Client) -> KeepAlive {
        KeepAlive {
            client,
            connection: None,
        }
    }

    /// Sends `request` (head and body, as written, without
    /// `Connection: close`) and reads its final answer.
    pub fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        let reader = match self.connection.take() {
            Some(reader) => reader,
            None => BufReader::new(self.client.connect()?),
        };
        let mut reader = reader;
        reader
            .get_mut()
            .write_all(request)
            .map_err(|e| Failure::before_acceptance("sending the request", &e))?;
        let response = read_final(&mut reader, false)?;
        let closes = response
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close"));
        if !closes {
            self.connection = Some(reader);
        }
        Ok(response)
    }
}

/// A GET whose head has gone out but for its final blank line: the server
/// has the connection and the start of a request, which it cannot answer
/// until [`HeldRequest::complete`] sends the rest.
pub struct HeldRequest {
    stream: TcpStream,
}

impl HeldRequest {
    /// Ends the head and waits for the answer.
    pub fn complete(mut self) -> Result<Response, Failure> {
        self.stream
            .write_all(b"\r\n")
            .map_err(|e| Failure::before_acceptance("ending the request head", &e))?;
        read_final(&mut BufReader::new(self.stream), false)
    }
}

/// The server's first answer to an upload's head.
pub enum Started {
    /// `100 Continue`: the server is reading the body.
    Continue(Upload),
    /// A final answer without wanting the body (e.g. 503 while draining).
    Answered(Response),
}

/// An upload the server has taken, whose body is still being sent.
pub struct Upload {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    remaining: usize,
}

impl Upload {
    /// Sends part of the body.
    pub fn send(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        let chunk = &chunk[..chunk.len().min(self.remaining)];
        self.stream
            .write_all(chunk)
            .and_then(|()| self.stream.flush())
            .map_err(|e| Failure::after_acceptance("sending the body", &e))?;
        self.remaining -= chunk.len();
        Ok(())
    }

    /// Waits for the final answer; the whole body must have been sent.
    pub fn finish(mut self) -> Result<Response, Failure> {
        read_final(&mut self.reader, true)
    }
}

/// Reads interim answers, then the final one.
fn read_final(reader: &mut impl BufRead, accepted: bool) -> Result<Response, Failure> {
    let fail = |e: &io::Error| Failure {
        accepted,
        reason: format!("waiting for the answer: {}", describe(e)),
    };
    loop {
        match read_head(reader) {
            Ok(Some(head)) if (100..200).contains(&head.status) => {}
            Ok(Some(head)) => {
                let body = read_body(reader, &head)
                    .map_err(|e| Failure::after_acceptance("reading the body", &e))?;
                return Ok(head.into_response(body));
            }
            Ok(None) => {
                return Err(Failure {
                    accepted,
                    reason: "connection closed without an answer".to_owned(),
                });
            }
            Err(e) => return Err(fail(&e)),
        }
    }
}

#[derive(Debug)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn into_response(self, body: Vec<u8>) -> Response {
        Response {
            status: self.status,
            headers: self.headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A status line and headers; `None` when the connection closed before the
/// first byte.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .filter(|_| line.starts_with("HTTP/1."))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("not an HTTP status line: {:?}", line.trim_end())))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line: {trimmed:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(Some(Head { status, headers }))
}

fn read_body(reader: &mut impl BufRead, head: &Head) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if matches!(head.status, 204 | 304) {
        return Ok(body);
    }
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        read_chunked(reader, &mut body)?;
    } else if let Some(length) = head.header("content-length") {
        let length: u64 = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        reader.take(length).read_to_end(&mut body)?;
        if (body.len() as u64) < length {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead, body: &mut Vec<u8>) -> io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let size_text = line.trim_end().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size_text.trim(), 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        let before = body.len();
        reader.take(size).read_to_end(body)?;
        if (body.len() - before) as u64 != size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.clear();
        reader.read_line(&mut line)?;
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::net::TcpListener;
    use std::thread;

    fn final_answer(bytes: &[u8]) -> Result<Response, Failure> {
        read_final(&mut Cursor::new(bytes.to_vec()), false)
    }

    #[test]
    fn a_response_with_a_length_is_read_to_its_end() {
        let response = final_answer(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length: 8\r\n\r\n{\"id\":7}trailing",
        )
        .unwrap();
        assert_eq!(response.status, 201);
        assert!(
            response
                .headers
                .contains(&("content-length".into(), "8".into()))
        );
        assert_eq!(response.json().unwrap()["id"], 7);
    }

    #[test]
    fn interim_answers_are_skipped() {
        let response =
            final_answer(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!(response.status, 204);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let response = final_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(response.body, b"Wikipedia");
    }

    #[test]
    fn a_body_without_a_length_runs_to_the_close() {
        let response = final_answer(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(response.body_text(), "all of it");
    }

    #[test]
    fn a_close_before_any_byte_is_no_answer() {
        let failure = final_answer(b"").unwrap_err();
        assert!(!failure.accepted);
        assert!(failure.reason.contains("without an answer"), "{failure:?}");
    }

    #[test]
    fn a_body_cut_short_is_an_error() {
        let failure =
            final_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap_err();
        assert!(failure.accepted);
    }

    #[test]
    fn garbage_is_not_a_status_line() {
        let failure = final_answer(b"SSH-2.0-OpenSSH\r\n").unwrap_err();
        assert!(
            failure.reason.contains("not an HTTP status line"),
            "{failure:?}"
        );
    }

    /// Serves one connection with `answer`, after reading the request head
    /// and as much body as `read_body` says.
    fn serve_once(answer: &'static [u8], continue_first: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut writer = stream;
            if continue_first {
                writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
            }
            writer.write_all(answer).unwrap();
        });
        addr
    }

    #[test]
    fn an_upload_waits_for_continue_then_sends_its_body_in_parts() {
        let addr = serve_once(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", true);
        let client = Client::new(addr, Duration::from_secs(5));
        let Ok(Started::Continue(mut upload)) = client.begin_upload("/x", "text/plain", 6) else {
            panic!("expected 100 Continue");
        };
        upload.send(b"abc").unwrap();
        upload.send(b"def").unwrap();
        assert_eq!(upload.finish().unwrap().status, 201);
    }

    #[test]
    fn a_server_may_answer_an_upload_without_taking_the_body() {
        let addr = serve_once(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        let client = Client::new(addr, Duration::from_secs(5));
        match client.post_json("/x", "{}") {
            Ok(response) => assert_eq!(response.status, 503),
            Err(failure) => panic!("{failure:?}"),
        }
    }

    #[test]
    fn a_held_request_is_answered_once_completed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
                head.push_str(&line);
                line.clear();
            }
            let mut writer = stream;
            writer
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            head
        });
        let held = Client::new(addr, Duration::from_secs(5))
            .hold_get("/ready")
            .unwrap();
        assert_eq!(held.complete().unwrap().status, 503);
        assert!(
            server
                .join()
                .unwrap()
                .starts_with("GET /ready HTTP/1.1\r\n")
        );
    }

    #[test]
    fn a_closed_port_is_a_failure_before_acceptance() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let failure = Client::new(addr, Duration::from_secs(1))
            .get("/")
            .unwrap_err();
        assert!(!failure.accepted);
        assert!(failure.reason.starts_with("connecting"), "{failure:?}");
    }

    #[test]
    fn a_kept_alive_connection_serves_requests_until_the_server_closes_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Two answers on the first connection, the second saying it
        // closes; one on the next.
        let server = thread::spawn(move || {
            let mut connections = 0;
            for answers in [2, 1] {
                let (stream, _) = listener.accept().unwrap();
                connections += 1;
                let mut reader = BufReader::new(stream);
                for n in 1..=answers {
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
                    let close = if n == answers {
                        "Connection: close\r\n"
                    } else {
                        ""
                    };
                    write!(
                        reader.get_mut(),
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{close}\r\nok"
                    )
                    .unwrap();
                }
            }
            connections
        });
        let mut connection = KeepAlive::new(Client::new(addr, Duration::from_secs(10)));
        for _ in 0..3 {
            let response = connection
                .exchange(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                .unwrap();
            assert_eq!(
                (response.status, response.body.as_slice()),
                (200, &b"ok"[..])
            );
        }
        assert_eq!(
            server.join().unwrap(),
            2,
            "three requests on two connections"
        );
    }
}
