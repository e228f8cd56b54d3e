//! The one error type of the library. Every variant names the file, field or value
//! that was wrong and, where there is one, the fix. The binary adds context with `anyhow`.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in nnlab, as structured variants.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named path failed. (The OS error is in the message, and
    /// deliberately not also a `source()`, which `{:#}` would print a second time.)
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    /// A file exists but its content is not what the format requires.
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },

    /// A file's checksum differs from the known value.
    #[error(
        "{path}: SHA-256 is {got}, expected {expected} (file is corrupt or not the official one)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        got: String,
    },

    /// No source could provide a dataset file.
    #[error("could not get {what}:\n{tried}\n{hint}")]
    Fetch {
        what: String,
        tried: String,
        hint: String,
    },

    /// Two arrays whose shapes must agree do not.
    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    Shape {
        op: &'static str,
        expected: String,
        got: String,
    },

    /// Two layers of a net that do not fit: what one gives, the next does not take.
    #[error("{layer} takes {takes}, but {before} gives {gives}: the two layers do not fit")]
    LayersDoNotFit {
        /// The later layer, as `Layer::describe` puts it, with its place in the net.
        layer: String,
        takes: String,
        /// The layer before it (or the net's input).
        before: String,
        gives: String,
    },

    /// Something would take more memory than the machine has available.
    #[error("{what} would take {need}, but this machine has {have} available; {hint}")]
    TooBig {
        what: String,
        need: String,
        have: String,
        hint: String,
    },

    /// A configuration field holds a value outside its domain.
    #[error("invalid {field} = {value}: {expected}")]
    Config {
        field: String,
        value: String,
        expected: String,
    },

    /// A name (dataset, preset, activation, ...) that nnlab does not know.
    #[error("unknown {kind} '{name}'; expected one of: {options}")]
    UnknownName {
        kind: &'static str,
        name: String,
        options: String,
    },

    /// Training produced NaN or infinity.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: {what} is {value}. \
         Try a smaller learning rate (--lr) or another initialiser (--init xavier-uniform)"
    )]
    Diverged {
        epoch: usize,
        batch: usize,
        what: String,
        value: f32,
    },

    /// Training was interrupted (Ctrl-C).
    #[error("{0}")]
    Interrupted(String),
}

impl Error {
    /// Helper: wrap an `io::Error` with the action and path it came from.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            cause,
        }
    }

    /// Helper: a format error on a path.
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Helper: a config error naming the field.
    pub fn config(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Error::Config {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}
