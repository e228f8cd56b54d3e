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
        let is = kind_name(&kind);
        return Err(Error::format(
            path,
            format!("is {is}, not a regular file; expected {what}"),
        ));
    }
    crate::memory::check_fits(
        &format!("reading {}", path.display()),
        meta.len() as f64,
        "is it the right file?",
    )?;
    let file = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut bytes = Vec::new();
    file.take(meta.len())
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(bytes)
}

/// What a file that is not a regular one is, for messages.
fn kind_name(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a folder"
    } else if is_fifo(kind) {
        "a FIFO (named pipe)"
    } else {
        "a device or socket"
    }
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

/// Checks, before a run, that `path` may be written as `what` (a model file): a new
/// path in a writable folder, or a regular file that `ours` recognises (a model or
/// checkpoint nnlab wrote), or any regular file when `force`. A folder, a device
/// node, a FIFO or a symlink is refused (a symlink naming what it points to: the write
/// would replace the link), and so is someone else's file without `force`.
pub fn check_target(
    path: &Path,
    what: &str,
    force: bool,
    ours: impl Fn(&Path) -> bool,
) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("checking", path, e)),
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_symlink() {
                let to = std::fs::read_link(path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|e| format!("an unreadable target ({e})"));
                return Err(Error::format(
                    path,
                    format!(
                        "is a symlink to {to}; writing {what} would replace the link: \
                         give the target's own path"
                    ),
                ));
            }
            if !kind.is_file() {
                let is = kind_name(&kind);
                return Err(Error::format(
                    path,
                    format!("is {is}; {what} can only go to a regular file"),
                ));
            }
            if !force && !ours(path) {
                return Err(Error::format(
                    path,
                    format!(
                        "exists and is not a file nnlab wrote; pass --force to replace it \
                         with {what}, or choose another path"
                    ),
                ));
            }
        }
    }
    check_writable(path)
}

/// An exclusive claim on a path for the life of a run: a lock file created with
/// `O_EXCL` holding the owner's process id. A second run is refused, naming the first's
/// process; a lock left by a process that no longer exists (killed) is taken over.
/// The file is removed when the lock is dropped.
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes the lock file `path` for `what` (which the error names).
    pub fn acquire(path: &Path, what: &str) -> Result<Lock> {
        let me = std::process::id();
        // The lock appears with its content at once: written to a temp file, then
        // hard-linked to `path`, which fails if `path` exists.
        let tmp = path.with_file_name(format!(
            ".{}.{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("lock"),
            unique_suffix()
        ));
        std::fs::write(&tmp, me.to_string()).map_err(|e| Error::io("writing", &tmp, e))?;
        let result = (|| {
            for _ in 0..3 {
                match std::fs::hard_link(&tmp, path) {
                    Ok(()) => {
                        return Ok(Lock {
                            path: path.to_path_buf(),
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let owner = std::fs::read_to_string(path)
                            .ok()
                            .and_then(|s| s.trim().parse::<u32>().ok());
                        if let Some(pid) = owner.filter(|&p| p != me && process_alive(p)) {
                            return Err(Error::format(
                                path,
                                format!(
                                    "{what} is in use by another nnlab run (process {pid}); \
                                     wait for it to end, or, if that process is not nnlab, \
                                     remove this lock file"
                                ),
                            ));
                        }
                        // a dead run's lock: moved aside (atomically, so two runs
                        // cannot both take it over), then try again
                        let aside = path.with_file_name(format!(".stale-lock.{}", unique_suffix()));
                        if std::fs::rename(path, &aside).is_ok() {
                            // another run may have taken it over in between: if what was
                            // moved is not the lock judged dead, put it back and yield
                            let moved = std::fs::read_to_string(&aside)
                                .ok()
                                .and_then(|s| s.trim().parse::<u32>().ok());
                            if moved != owner {
                                let _ = std::fs::hard_link(&aside, path);
                                let _ = std::fs::remove_file(&aside);
                                continue;
                            }
                            let _ = std::fs::remove_file(&aside);
                        }
                    }
                    Err(e) => return Err(Error::io("creating the lock", path, e)),
                }
            }
            Err(Error::format(
                path,
                format!("could not take the lock on {what}"),
            ))
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // only our own lock (never one another run has taken over since)
        let mine = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if mine {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a process with this id exists.
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes the temp files that `write_atomic` left in `dir` for `name` when its
/// process died mid-write (`.NAME.tmp-PID-N` with no process PID).
pub fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !process_alive(p)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
