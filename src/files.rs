//! File helpers shared by everything that reads or writes files: reading a regular
//! file whole (never a FIFO, a device or a folder, and never more than it holds),
//! unique temp names, atomic writes (temp file beside the target, flushed, renamed),
//! and a check that a path can be written before a long run starts.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads `path` whole, if it is a regular file (after following symlinks): a folder,
/// a FIFO (whose reading would wait for a writer) or a device such as `/dev/zero`
/// (which never ends) is refused, naming what it is; `what` says what was expected.
/// Reads at most the size the file had when opened.
pub fn read_regular(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let is = if kind.is_dir() {
            "a folder"
        } else if is_fifo(&kind) {
            "a FIFO (named pipe)"
        } else {
            "not a regular file (a device or socket)"
        };
        return Err(Error::format(path, format!("is {is}; expected {what}")));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(meta.len())
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(bytes)
}

#[cfg(unix)]
fn is_fifo(kind: &std::fs::FileType) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(kind)
}

#[cfg(not(unix))]
fn is_fifo(_: &std::fs::FileType) -> bool {
    false
}

/// A name part unique within this machine: process id and a per-process counter.
pub fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Writes `bytes` to `path` atomically: a temp file beside it, flushed, then renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        unique_suffix()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing", path, e));
    }
    Ok(())
}

/// Checks, before a long run, that `path` can be written: its folder exists and
/// accepts a file.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::format(
            &dir,
            "folder does not exist (create it first, or choose another --save path)",
        ));
    }
    if path.is_dir() {
        return Err(Error::format(
            path,
            "is a folder; --save takes a file path such as model.safetensors",
        ));
    }
    let probe = dir.join(format!(".nnlab-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| Error::io("writing into", &dir, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
