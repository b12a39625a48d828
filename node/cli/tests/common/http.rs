//! A minimal HTTP/1.1 client for tests (GET, form, JSON and raw POSTs, `Connection:
//! close`, chunked bodies).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Every value of header `name` (Set-Cookie comes several times).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `path?k=v&…` with the values encoded.
pub fn url(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    format!("{path}?{}", q.join("&"))
}

pub fn get(addr: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", target, headers, None)
}

/// POSTs `fields` as an HTML form would (application/x-www-form-urlencoded).
pub fn post_form(addr: &str, target: &str, headers: &[(&str, &str)], fields: &[(&str, &str)]) -> Response {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    request(addr, "POST", target, headers, Some(body.join("&")))
}

pub fn request(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: Option<String>) -> Response {
    request_bytes(addr, method, target, headers, body.map(|b| ("application/x-www-form-urlencoded", b.into_bytes())))
}

/// A JSON body, as a program calling the API sends it.
pub fn json(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &serde_json::Value) -> Response {
    request_bytes(addr, method, target, headers, Some(("application/json", body.to_string().into_bytes())))
}

/// Any body with its content type. A server may answer (and close) before the whole
/// body is sent (an upload over a cap): the rest of it is not written, and the answer
/// is read all the same.
pub fn request_bytes(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: Option<(&str, Vec<u8>)>) -> Response {
    send(addr, method, target, headers, body, false)
}

/// As [`request_bytes`], the body sent in 64 KiB chunks with no length declared (a
/// stream whose size the server learns only as it arrives).
pub fn request_chunked(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: (&str, Vec<u8>)) -> Response {
    send(addr, method, target, headers, Some(body), true)
}

fn send(addr: &str, method: &str, target: &str, headers: &[(&str, &str)], body: Option<(&str, Vec<u8>)>, chunked: bool) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match &body {
        Some((ct, _)) if chunked => req.push_str(&format!("Content-Type: {ct}\r\nTransfer-Encoding: chunked\r\n")),
        Some((ct, b)) => req.push_str(&format!("Content-Type: {ct}\r\nContent-Length: {}\r\n", b.len())),
        None => {}
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some((_, b)) = &body {
        for chunk in b.chunks(64 * 1024) {
            let framed = if chunked { [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat() } else { chunk.to_vec() };
            if s.write_all(&framed).is_err() {
                break;
            }
        }
        if chunked {
            let _ = s.write_all(b"0\r\n\r\n");
        }
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().split(';').next().unwrap().trim(), 16).unwrap();
        b = &b[nl + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
