//! Subcommand implementations and the printing they share.

pub mod bench;
pub mod compare;
pub mod data;
pub mod ensemble;
pub mod eval;
pub mod http;
pub mod lab;
pub mod live;
pub mod predict;
pub mod rbm;
pub mod report;
pub mod serve;
pub mod study;
pub mod train;

use crate::cli::{DataOpts, OutputOpts};
use nnlab::data::{DatasetRef, FetchOptions, Splits};
use nnlab::train::EpochStats;
use std::io::IsTerminal;
use std::io::Write;
use std::sync::OnceLock;

/// The first error writing to stdout (a full disk, a closed pipe), if any: later
/// writes are skipped, and `main` reports it and exits non-zero once the command ends.
static STDOUT_ERROR: OnceLock<String> = OnceLock::new();

/// Writes to stdout without panicking (`println!` panics when stdout fails); see
/// [`stdout_error`].
pub fn write_out(args: std::fmt::Arguments<'_>, newline: bool) {
    if STDOUT_ERROR.get().is_some() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let res = out.write_fmt(args).and_then(|_| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = res {
        let _ = STDOUT_ERROR.set(e.to_string());
    }
}

/// Flushes stdout and returns the first error writing to it, if there was one.
pub fn stdout_error() -> Option<String> {
    if let Err(e) = std::io::stdout().flush() {
        let _ = STDOUT_ERROR.set(e.to_string());
    }
    STDOUT_ERROR.get().cloned()
}

/// `println!` that records a failure instead of panicking (`write_out`).
macro_rules! outln {
    () => {
        $crate::commands::write_out(format_args!(""), true)
    };
    ($($t:tt)*) => {
        $crate::commands::write_out(format_args!($($t)*), true)
    };
}
pub(crate) use outln;

/// `print!` that records a failure instead of panicking (`write_out`).
macro_rules! out {
    ($($t:tt)*) => {
        $crate::commands::write_out(format_args!($($t)*), false)
    };
}
pub(crate) use out;

/// Prints a JSON value on one line, its `f32` figures as they print (`report::tidy`).
pub fn print_json(v: serde_json::Value) {
    outln!("{}", nnlab::report::tidy(v));
}

/// `n` and the noun, singular for 1: "1 epoch", "15 epochs".
pub fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// Fetch options from the data flags.
pub fn fetch_options(d: &DataOpts, quiet: bool) -> FetchOptions {
    let mut o = FetchOptions::new(nnlab::data::fetch::default_data_dir(d.data_dir.as_deref()));
    if d.no_mirrors {
        o.mirrors = Some(Vec::new());
    } else if !d.mirrors.is_empty() {
        o.mirrors = Some(
            d.mirrors
                .iter()
                .map(|m| {
                    if m.ends_with('/') {
                        m.clone()
                    } else {
                        format!("{m}/")
                    }
                })
                .collect(),
        );
    }
    o.npm = !d.no_npm;
    o.quiet = quiet;
    o
}

/// Resolves, fetches if needed, and loads a dataset.
pub fn load_dataset(name: &str, d: &DataOpts, quiet: bool) -> anyhow::Result<Splits> {
    let r = DatasetRef::parse(name)?;
    Ok(r.load(&fetch_options(d, quiet))?)
}

/// Prints per-epoch lines: the lecture's `Epoch: 0001 cost = 0.301498963`, then
/// validation accuracy and time; or a JSON object per epoch.
pub struct EpochPrinter<'a> {
    pub out: &'a OutputOpts,
    pub tag: &'a str,
}

impl EpochPrinter<'_> {
    pub fn print(&self, s: &EpochStats) {
        if self.out.json {
            let mut v = serde_json::to_value(s).expect("stats serialise");
            v["event"] = "epoch".into();
            v["run"] = self.tag.into();
            print_json(v);
        } else if !self.out.quiet {
            let val = s
                .val_acc
                .map_or(String::new(), |a| format!("  validation = {a:.4}"));
            outln!(
                "Epoch: {:04} cost = {:.9}  train = {:.4}{val}  ({:.2} s)",
                s.epoch,
                s.cost,
                s.train_acc,
                s.seconds
            );
        }
    }
}

/// A spinner-free progress line on stderr while an epoch trains, when stderr is a
/// terminal and output is not quiet or JSON.
pub fn wants_progress(out: &OutputOpts) -> bool {
    !out.quiet && !out.json && std::io::stderr().is_terminal()
}

/// Loads a model file, printing what was assumed for a foreign one.
pub fn load_model(path: &std::path::Path, quiet: bool) -> anyhow::Result<nnlab::io::LoadedModel> {
    let m = nnlab::io::load_model(path).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    if !quiet {
        for w in &m.warnings {
            eprintln!("nnlab: {}: {w}", path.display());
        }
    }
    Ok(m)
}

/// Checks that a model fits a dataset: same input size and class count.
pub fn check_fits(m: &nnlab::io::LoadedModel, d: &nnlab::data::Dataset) -> anyhow::Result<()> {
    let (h, w) = m.meta.input_shape;
    if m.model.in_dim != d.features() {
        anyhow::bail!(
            "{} takes {} inputs ({h}x{w}) but {} has {} ({}x{}); use the dataset it was trained on",
            m.path.display(),
            m.model.in_dim,
            d.name,
            d.features(),
            d.height,
            d.width
        );
    }
    if m.model.classes != d.classes() {
        anyhow::bail!(
            "{} predicts {} classes but {} has {}",
            m.path.display(),
            m.model.classes,
            d.name,
            d.classes()
        );
    }
    Ok(())
}
