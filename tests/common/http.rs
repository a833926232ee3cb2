//! A minimal HTTP/1.1 client for the REST tests: one request per connection, JSON bodies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A response: status, headers (names lower-cased) and body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// One request on a fresh connection (`Connection: close`). Absolute URIs (the API's links) are
/// fetched by their path.
pub fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    Response { status, headers, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        body.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    body
}

/// Standard base64 with padding (HTTP Basic credentials).
pub fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A logged-in REST client.
pub struct Client {
    pub addr: SocketAddr,
    token: String,
}

impl Client {
    /// Logs in with Basic credentials and keeps the token.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Client {
        let basic = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let r = http(addr, "POST", "/midonet-api/login", &[("Authorization", &basic)], None);
        assert_eq!(r.status, 200, "login: {}", r.body);
        Client { addr, token: r.json()["key"].as_str().unwrap().to_string() }
    }

    /// The session token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// GET with `X-Auth-Token`; panics unless 200.
    pub fn get(&self, path: &str, accept: &str) -> Value {
        let r = http(self.addr, "GET", path, &[("X-Auth-Token", &self.token), ("Accept", accept)], None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        r.json()
    }

    /// POST `body` as `media`; panics unless 201; returns the created resource (GET of `Location`).
    pub fn create(&self, path: &str, media: &str, body: &Value) -> Value {
        let text = body.to_string();
        let headers = [("X-Auth-Token", self.token.as_str()), ("Content-Type", media), ("Accept", media)];
        let r = http(self.addr, "POST", path, &headers, Some(&text));
        assert_eq!(r.status, 201, "POST {path} {text}: {}", r.body);
        let location = r.header("location").expect("201 has a Location").to_string();
        self.get(&location, media)
    }

    /// PUT `body` as `media`; panics unless 200 or 204.
    pub fn update(&self, path: &str, media: &str, body: &Value) {
        let text = body.to_string();
        let headers = [("X-Auth-Token", self.token.as_str()), ("Content-Type", media)];
        let r = http(self.addr, "PUT", path, &headers, Some(&text));
        assert!(r.status == 200 || r.status == 204, "PUT {path} {text}: {} {}", r.status, r.body);
    }

    /// DELETE; panics unless 204.
    pub fn delete(&self, path: &str) {
        let r = http(self.addr, "DELETE", path, &[("X-Auth-Token", &self.token)], None);
        assert_eq!(r.status, 204, "DELETE {path}: {}", r.body);
    }
}
