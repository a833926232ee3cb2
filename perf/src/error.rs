//! The perf library's error type.

use std::path::PathBuf;

/// Everything that can go wrong in perf/.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame cannot be built as specified.
    #[error("cannot build frame: {0}")]
    Build(String),
    /// A scenario name matches nothing in the table.
    #[error("unknown scenario {name:?}; known: {known}")]
    UnknownScenario {
        /// What was asked for.
        name: String,
        /// Every scenario and group name, comma separated.
        known: String,
    },
    /// The scenario table or a scenario in it is malformed.
    #[error("scenario {name}: {reason}")]
    Scenario {
        /// The scenario.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON document could not be read or written.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A TOML document could not be parsed.
    #[error("{what}: {source}")]
    Toml {
        /// The document.
        what: String,
        /// The cause.
        source: toml::de::Error,
    },
    /// The DPDK data plane refused something.
    #[error(transparent)]
    Dpdk(#[from] midogw::Error),
    /// A benchmark process failed or misbehaved.
    #[error("{what}: {detail}")]
    Process {
        /// Which process (generator, device under test, valgrind, ...).
        what: String,
        /// What happened, with the tail of its output where useful.
        detail: String,
    },
    /// The ports of a run did not come up.
    #[error("{0}")]
    Link(String),
    /// The chart could not be drawn.
    #[error("chart: {0}")]
    Chart(String),
    /// Two reports cannot be compared.
    #[error("compare: {0}")]
    Compare(String),
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}
