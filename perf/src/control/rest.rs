//! REST load: N concurrent keep-alive connections, each sending its next request as soon as the
//! previous answer is read (closed loop), for a warm-up and then a measured window.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use super::http::Connection;
use super::stats::LatencySummary;
use super::ControlError;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Req {
    /// Method.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Header names and values.
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Option<Bytes>,
}

/// Builds request number `i` (counted across all connections).
pub type MakeReq = Arc<dyn Fn(u64) -> Req + Send + Sync>;

/// How a load run went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// Concurrent connections.
    pub connections: usize,
    /// Requests answered with the expected status inside the measured window.
    pub requests: u64,
    /// Requests answered with another status, or failed, inside the window.
    pub errors: u64,
    /// The measured window.
    pub seconds: f64,
    /// `requests / seconds`.
    pub per_second: f64,
    /// Latency of the successful requests of the window (send to last body byte).
    pub latency: Option<LatencySummary>,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
}

struct TaskResult {
    ok_ns: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// Drives `connections` closed-loop clients against `addr` for `warmup` then `window`, each request
/// expected to answer `expect`.
pub async fn drive(
    addr: SocketAddr,
    connections: usize,
    warmup: Duration,
    window: Duration,
    expect: u16,
    make: MakeReq,
) -> Result<LoadResult, ControlError> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Connection::open(addr).await?);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (measure_from, measure_to) = (start + warmup, start + warmup + window);
    let mut tasks = Vec::with_capacity(connections);
    for mut conn in conns {
        let (make, counter) = (Arc::clone(&make), Arc::clone(&counter));
        tasks.push(tokio::spawn(async move {
            let mut r = TaskResult { ok_ns: Vec::with_capacity(4096), errors: 0, first_error: None };
            loop {
                let req = make(counter.fetch_add(1, Ordering::Relaxed));
                let headers: Vec<(&str, &str)> = req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let sent = Instant::now();
                if sent >= measure_to {
                    break;
                }
                let outcome = conn.send(req.method, &req.path, &headers, req.body).await;
                let done = Instant::now();
                let counted = sent >= measure_from && done <= measure_to;
                match outcome {
                    Ok(resp) if resp.status == expect => {
                        if counted {
                            r.ok_ns.push(done.duration_since(sent).as_nanos() as u64);
                        }
                    }
                    Ok(resp) => {
                        if counted {
                            r.errors += 1;
                        }
                        r.first_error.get_or_insert_with(|| {
                            format!(
                                "{} {}: status {}: {}",
                                req.method,
                                req.path,
                                resp.status,
                                String::from_utf8_lossy(&resp.body).chars().take(200).collect::<String>()
                            )
                        });
                    }
                    Err(e) => {
                        // A broken connection ends this client; the error is counted and reported.
                        r.errors += 1;
                        r.first_error.get_or_insert_with(|| e.to_string());
                        break;
                    }
                }
            }
            r
        }));
    }
    let mut ok_ns = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for t in tasks {
        let r = t.await.map_err(|e| ControlError::Http(format!("client task: {e}")))?;
        ok_ns.extend(r.ok_ns);
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let seconds = window.as_secs_f64();
    let requests = ok_ns.len() as u64;
    Ok(LoadResult {
        connections,
        requests,
        errors,
        seconds,
        per_second: requests as f64 / seconds,
        latency: LatencySummary::from_nanos(&mut ok_ns),
        first_error,
    })
}

/// `GET` of `path` with the token, accepting `media`.
pub fn get(path: String, token: &str, media: &'static str) -> MakeReq {
    let token = token.to_string();
    Arc::new(move |_| Req {
        method: "GET",
        path: path.clone(),
        headers: vec![("x-auth-token", token.clone()), ("accept", media.to_string())],
        body: None,
    })
}

/// `GET` of each of `paths` in turn.
pub fn get_each(paths: Vec<String>, token: &str, media: &'static str) -> MakeReq {
    let token = token.to_string();
    Arc::new(move |i| Req {
        method: "GET",
        path: paths[(i % paths.len() as u64) as usize].clone(),
        headers: vec![("x-auth-token", token.clone()), ("accept", media.to_string())],
        body: None,
    })
}

/// `POST` of `body(i)` to `path(i)` as `media`.
pub fn post(
    token: &str,
    media: &'static str,
    target: impl Fn(u64) -> (String, serde_json::Value) + Send + Sync + 'static,
) -> MakeReq {
    let token = token.to_string();
    Arc::new(move |i| {
        let (path, body) = target(i);
        Req {
            method: "POST",
            path,
            headers: vec![
                ("x-auth-token", token.clone()),
                ("content-type", media.to_string()),
                ("accept", media.to_string()),
            ],
            body: Some(Bytes::from(body.to_string())),
        }
    })
}
