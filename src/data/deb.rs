//! Files from a Debian package, without root: `apt-get download PKG` into a scratch
//! folder (the same client and sources the machine already uses), then the `.deb`
//! unpacked here: an `ar` archive whose `data.tar.xz` (or `.gz`) holds the package's
//! files. Nothing is installed; the caller verifies what it takes by SHA-256.
//!
//! Where the machine's package lists are missing or stale, `apt-get download` cannot
//! find the package; then the lists are fetched once into the scratch folder
//! (`apt-get update` with `Dir::State::Lists` pointing there, which needs no root and
//! leaves the system's own lists alone) and the download is tried again with them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Largest `.deb` or unpacked data archive accepted.
const MAX_BYTES: u64 = 512 << 20;

/// A downloaded package's data archive, unpacked into memory (a plain tar).
pub struct DebData {
    tar: Vec<u8>,
}

/// Runs `apt-get download PKG` in `scratch` and unpacks the `.deb` it leaves there.
pub fn download(package: &str, scratch: &Path) -> Result<DebData, String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let deb = match apt_download(package, scratch, &[]) {
        Ok(deb) => deb,
        Err(first) => {
            // the machine's lists may lack the package: fetch lists of our own
            let lists = scratch.join("lists");
            let cache = scratch.join("cache");
            for d in [lists.join("partial"), cache.join("archives/partial")] {
                std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            }
            let opts = [
                format!("Dir::State::Lists={}", lists.display()),
                format!("Dir::Cache={}", cache.display()),
                "Debug::NoLocking=1".to_string(),
            ];
            run_apt(&opts, &["update", "-qq"], scratch).map_err(|e| {
                format!(
                    "{first}; fetching package lists into {} failed too: {e}",
                    lists.display()
                )
            })?;
            apt_download(package, scratch, &opts)?
        }
    };
    let data = unpack(&deb);
    let _ = std::fs::remove_file(&deb);
    data
}

fn run_apt(opts: &[String], args: &[&str], cwd: &Path) -> Result<(), String> {
    let mut cmd = Command::new("apt-get");
    for o in opts {
        cmd.arg("-o").arg(o);
    }
    let out = cmd
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run `apt-get` ({e}); is this a Debian system?"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        Err(format!(
            "`apt-get {}` failed: {}",
            args.join(" "),
            last.trim()
        ))
    }
}

/// `apt-get download`, then the `.deb` it wrote (the only one in `scratch`).
fn apt_download(package: &str, scratch: &Path, opts: &[String]) -> Result<PathBuf, String> {
    run_apt(opts, &["download", "-qq", package], scratch)?;
    let entries = std::fs::read_dir(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            format!(
                "`apt-get download {package}` left no .deb in {}",
                scratch.display()
            )
        })
}

/// Reads a `.deb` and unpacks its data archive.
pub fn unpack(deb: &Path) -> Result<DebData, String> {
    let file = std::fs::File::open(deb).map_err(|e| format!("{}: {e}", deb.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", deb.display()))?;
    let (name, member) = ar_member(&bytes, "data.tar")
        .map_err(|e| format!("{}: not a Debian package: {e}", deb.display()))?;
    let tar = decompress(name, member).map_err(|e| format!("{}: {name}: {e}", deb.display()))?;
    Ok(DebData { tar })
}

/// The first member of an `ar` archive whose name starts with `prefix`: its name and
/// bytes. The format: `!<arch>\n`, then per member a 60-byte header (name 16, dates
/// and modes 32, size 10 as decimal ASCII, `` `\n ``) and the data, padded to an even
/// length.
fn ar_member<'a>(bytes: &'a [u8], prefix: &str) -> Result<(&'a str, &'a [u8]), String> {
    let rest = bytes
        .strip_prefix(b"!<arch>\n")
        .ok_or("no `!<arch>` magic")?;
    let mut at = 0;
    while at + 60 <= rest.len() {
        let header = &rest[at..at + 60];
        if &header[58..60] != b"`\n" {
            return Err(format!("bad member header at byte {}", at + 8));
        }
        let name = std::str::from_utf8(&header[..16])
            .map_err(|_| "member name not UTF-8")?
            .trim_end()
            .trim_end_matches('/');
        let size: usize = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or("member size not a number")?;
        let start = at + 60;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= rest.len())
            .ok_or_else(|| format!("member {name} runs past the end"))?;
        if name.starts_with(prefix) {
            return Ok((name, &rest[start..end]));
        }
        at = end + (size & 1);
    }
    Err(format!("no {prefix}* member"))
}

fn decompress(name: &str, member: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    if name.ends_with(".xz") {
        let mut input = std::io::BufReader::new(member);
        let mut sink = Limited { out: &mut out };
        lzma_rs::xz_decompress(&mut input, &mut sink).map_err(|e| format!("bad xz data: {e}"))?;
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(member)
            .take(MAX_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| format!("bad gzip data: {e}"))?;
    } else if name == "data.tar" {
        out.extend_from_slice(member);
    } else {
        return Err("unsupported compression (xz, gzip or none expected)".into());
    }
    Ok(out)
}

/// A writer that refuses to grow past `MAX_BYTES` (a small archive may declare a
/// huge payload).
struct Limited<'a> {
    out: &'a mut Vec<u8>,
}

impl std::io::Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() as u64 + buf.len() as u64 > MAX_BYTES {
            return Err(std::io::Error::other(format!(
                "unpacks to over {} MB",
                MAX_BYTES >> 20
            )));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl DebData {
    /// The bytes of the file the package installs at `path` (absolute, as installed:
    /// `/usr/share/...`).
    pub fn file(&self, path: &str) -> Result<Vec<u8>, String> {
        let want = Path::new(path.trim_start_matches('/'));
        let mut archive = tar::Archive::new(&self.tar[..]);
        let entries = archive
            .entries()
            .map_err(|e| format!("corrupt data archive: {e}"))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| format!("corrupt data archive: {e}"))?;
            let p = entry.path().map_err(|e| e.to_string())?.into_owned();
            if p.strip_prefix(".").unwrap_or(&p) == want {
                let mut out = Vec::new();
                (&mut entry)
                    .take(MAX_BYTES)
                    .read_to_end(&mut out)
                    .map_err(|e| e.to_string())?;
                return Ok(out);
            }
        }
        Err(format!("the package has no {path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `ar` archive of the given members, as `ar` writes one.
    fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            let header = format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                name,
                0,
                0,
                0,
                100644,
                data.len()
            );
            assert_eq!(header.len(), 60);
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    fn tar_of(path: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn members_are_found_past_odd_lengths() {
        let a = ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", b"abc"),
            ("data.tar", b"xyz"),
        ]);
        let (name, data) = ar_member(&a, "data.tar").unwrap();
        assert_eq!((name, data), ("data.tar", &b"xyz"[..]));
        assert!(ar_member(&a, "nothing").unwrap_err().contains("no nothing"));
        assert!(ar_member(b"not an archive", "data").is_err());
        // a member claiming more bytes than there are
        let mut bad = ar(&[("data.tar", b"xyz")]);
        bad.truncate(bad.len() - 2);
        assert!(
            ar_member(&bad, "data.tar")
                .unwrap_err()
                .contains("past the end")
        );
    }

    #[test]
    fn a_gzipped_data_archive_gives_its_files() {
        use std::io::Write;
        let tar = tar_of("./usr/share/x/f.txt", b"hello");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let a = ar(&[
            ("debian-binary", b"2.0\n"),
            ("data.tar.gz", &gz.finish().unwrap()),
        ]);
        let d = tempfile_path("a.deb");
        std::fs::write(&d, a).unwrap();
        let data = unpack(&d).unwrap();
        assert_eq!(data.file("/usr/share/x/f.txt").unwrap(), b"hello");
        assert!(
            data.file("/usr/share/x/g.txt")
                .unwrap_err()
                .contains("no /usr/share/x/g.txt")
        );
        let _ = std::fs::remove_file(&d);
    }

    #[test]
    fn unknown_compression_and_bad_xz_are_errors() {
        assert!(
            decompress("data.tar.zst", b"..")
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(
            decompress("data.tar.xz", b"not xz")
                .unwrap_err()
                .contains("bad xz")
        );
    }

    fn tempfile_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("nnlab-deb-test-{}-{name}", std::process::id()))
    }
}
