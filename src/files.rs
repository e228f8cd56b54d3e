//! File helpers shared by everything that writes: unique temp names, atomic
//! writes (temp file beside the target, flushed, renamed), and a check that a path
//! can be written before a long run starts.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

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
