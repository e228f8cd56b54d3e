//! `nnlab data fetch | info | show`.

use super::outln;
use super::{fetch_options, load_dataset};
use crate::cli::{DataArgs, DataCommand, Split};
use nnlab::data::datasets::{DatasetRef, FILE_NAMES, find_file};
use nnlab::data::fetch::{CacheState, check_cached};
use nnlab::render::{TextStyle, draw};

pub fn run(args: &DataArgs) -> anyhow::Result<()> {
    match &args.command {
        DataCommand::Fetch { dataset } => {
            let r = DatasetRef::parse(dataset)?;
            if let DatasetRef::Folder(p) = &r {
                anyhow::bail!(
                    "{} is a folder: there is nothing to fetch (use `nnlab data info {}`)",
                    p.display(),
                    p.display()
                );
            }
            let dir = r.ensure_files(&fetch_options(&args.data, false))?;
            outln!("{}: all four files verified in {}", r.name(), dir.display());
            Ok(())
        }
        DataCommand::Info { dataset } => info(dataset, args),
        DataCommand::Show {
            dataset,
            index,
            split,
            style,
            ascii,
        } => {
            let style = if *ascii { &TextStyle::Ascii } else { style };
            let s = load_dataset(dataset, &args.data, false)?;
            let d = if *split == Split::Train {
                &s.train
            } else {
                &s.test
            };
            if *index >= d.len() {
                anyhow::bail!(
                    "--index {index} is out of range: the {} part has {} images (0..{})",
                    d.name,
                    d.len(),
                    d.len() - 1
                );
            }
            let label = d.labels[*index] as usize;
            outln!(
                "{} #{index}: label {label} ({})",
                d.name,
                d.class_names[label]
            );
            outln!("{}", draw(d.images.row(*index), d.height, d.width, *style));
            Ok(())
        }
    }
}

fn info(dataset: &str, args: &DataArgs) -> anyhow::Result<()> {
    let r = DatasetRef::parse(dataset)?;
    let opts = fetch_options(&args.data, false);
    let dir = r.ensure_files(&opts)?;
    outln!("dataset: {}", r.name());
    outln!("folder:  {}", dir.display());
    for name in FILE_NAMES {
        let path = find_file(&dir, name)?;
        let status = match &r {
            DatasetRef::Known { spec, .. } => {
                let f = spec
                    .files
                    .iter()
                    .find(|f| f.name == name)
                    .expect("known file");
                match check_cached(&path, f)? {
                    CacheState::Good => "SHA-256 OK".to_string(),
                    CacheState::Missing => "missing".to_string(),
                    CacheState::Bad(got) => format!("SHA-256 MISMATCH ({got})"),
                }
            }
            DatasetRef::Folder(_) => "no known checksum (folder)".to_string(),
        };
        outln!(
            "  {:<28} {status}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    let s = r.load(&opts)?;
    outln!(
        "images:  {}x{} grey, {} classes",
        s.train.height,
        s.train.width,
        s.train.classes()
    );
    for d in [&s.train, &s.test] {
        outln!("{}: {} images", d.name, d.len());
        for (c, n) in d.class_counts().iter().enumerate() {
            outln!("  {c:>3} {:<12} {n:>6}", d.class_names[c]);
        }
    }
    Ok(())
}
