//! The load client: one keep-alive HTTP/1.1 connection per simulated client (hyper's connection
//! API, no pool), sending requests as python-midonetclient does (`X-Auth-Token`, vendor media types).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::ControlError;

/// The API's root path.
pub const API: &str = "/midonet-api";
/// `Router-v3`.
pub const ROUTER: &str = "application/vnd.org.midonet.Router-v3+json";
/// `collection.Router-v3`.
pub const ROUTERS: &str = "application/vnd.org.midonet.collection.Router-v3+json";
/// `Route-v1`.
pub const ROUTE: &str = "application/vnd.org.midonet.Route-v1+json";

/// A response's status and body.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Bytes,
}

/// One open keep-alive connection.
pub struct Connection {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

fn net(what: &str, e: impl std::fmt::Display) -> ControlError {
    ControlError::Http(format!("{what}: {e}"))
}

impl Connection {
    /// Connects (TCP_NODELAY, as HTTP clients set it) and runs the connection on the runtime.
    pub async fn open(addr: SocketAddr) -> Result<Connection, ControlError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| net(&format!("connecting to {addr}"), e))?;
        stream.set_nodelay(true).map_err(|e| net("TCP_NODELAY", e))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| net("handshake", e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection closed: {e}");
            }
        });
        Ok(Connection { addr, sender })
    }

    /// Sends one request and reads the whole response body.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Response, ControlError> {
        let mut req = Request::builder().method(method).uri(path).header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.unwrap_or_default())).map_err(|e| net("request", e))?;
        self.sender.ready().await.map_err(|e| net("connection", e))?;
        let resp = self.sender.send_request(req).await.map_err(|e| net(&format!("{method} {path}"), e))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| net("reading the body", e))?.to_bytes();
        Ok(Response { status, body })
    }
}

/// Standard base64 with padding (HTTP Basic credentials).
pub fn base64(input: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
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

/// Logs in with Basic credentials; the session token.
pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Result<String, ControlError> {
    let mut c = Connection::open(addr).await?;
    let basic = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
    let r = c.send("POST", &format!("{API}/login"), &[("authorization", &basic)], None).await?;
    if r.status != 200 {
        return Err(ControlError::Http(format!("login: status {}: {}", r.status, String::from_utf8_lossy(&r.body))));
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| net("login body", e))?;
    v["key"].as_str().map(str::to_string).ok_or_else(|| ControlError::Http(format!("login: no key in {v}")))
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
