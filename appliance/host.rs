//! This gateway's identity as a MidoNet Host: its id and name.
//!
//! The id is `[host] id` when the config sets it (several gateways sharing one ZooKeeper each need
//! their own), else generated once and kept in `host_id` beside the embedded store, so a restart is
//! the same host and keeps its port bindings.

use std::path::Path;

use anyhow::{Context, Result};
use uuid::Uuid;

use crate::config::Config;

/// The file, in the store's directory, that keeps a generated host id.
const HOST_ID_FILE: &str = "host_id";

/// This gateway's host id.
pub fn host_id(cfg: &Config) -> Result<Uuid> {
    if let Some(id) = cfg.host.id {
        return Ok(id);
    }
    let dir = cfg.store.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = dir.join(HOST_ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => text
            .trim()
            .parse()
            .with_context(|| format!("{} does not hold a UUID; delete it or set [host] id", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = Uuid::new_v4();
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            // Written to a temporary name and renamed, so a crash never leaves half an id.
            let tmp = dir.join(format!("{HOST_ID_FILE}.tmp"));
            std::fs::write(&tmp, format!("{id}\n")).with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &file).with_context(|| format!("cannot write {}", file.display()))?;
            tracing::info!(host = %id, file = %file.display(), "generated this gateway's host id");
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// `[host] name`, else the kernel's host name.
pub fn host_name_or(cfg: &Config) -> String {
    cfg.host.name.clone().unwrap_or_else(host_name)
}

/// The kernel's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "midogw".into())
}
