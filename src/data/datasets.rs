//! Datasets: MNIST, Fashion-MNIST and any folder of the four standard IDX files, as
//! in-memory `Dataset`s with the lab's train/validation split. Fetching is `fetch`'s job.

use crate::data::fetch::{self, FetchOptions, RemoteSpec};
use crate::data::idx;
use crate::error::{Error, Result};
use crate::tensor::Matrix;
use std::path::{Path, PathBuf};

/// The lab convention (TensorFlow's `read_data_sets`): the first 5,000 training
/// images are the validation set, the other 55,000 the training set.
pub const LAB_VALIDATION: usize = 5000;

/// The four standard file names (each may also end in `.gz`).
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Labelled grey images in memory.
///
/// # Shapes
/// `images: (len, height * width)` with pixels in [0, 1]; `labels: (len,)`, each
/// `< class_names.len()`.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub images: Matrix,
    pub labels: Vec<u8>,
    pub height: usize,
    pub width: usize,
    pub class_names: Vec<String>,
}

impl Dataset {
    /// The shape of one example: a one-channel image `(1, height, width)`.
    pub fn shape(&self) -> crate::layers::Features {
        crate::layers::Features::Image {
            c: 1,
            h: self.height,
            w: self.width,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// Features per example (`height * width`).
    pub fn features(&self) -> usize {
        self.images.cols
    }

    /// How many examples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Examples `range` as a new dataset named `name`.
    pub fn slice(&self, range: std::ops::Range<usize>, name: &str) -> Dataset {
        let f = self.features();
        Dataset {
            name: name.to_string(),
            images: Matrix::from_vec(
                range.len(),
                f,
                self.images.data[range.start * f..range.end * f].to_vec(),
            ),
            labels: self.labels[range].to_vec(),
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
        }
    }

    /// Splits off the first `val` examples as validation: `(train, validation)`.
    pub fn split_validation(&self, val: usize) -> Result<(Dataset, Dataset)> {
        if val >= self.len() {
            return Err(Error::config(
                "validation size",
                val,
                format!("must be below the {} training examples", self.len()),
            ));
        }
        Ok((
            self.slice(val..self.len(), &format!("{} train", self.name)),
            self.slice(0..val, &format!("{} validation", self.name)),
        ))
    }
}

/// A dataset's training and test parts.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
}

/// Which dataset a name refers to.
#[derive(Clone, Debug)]
pub enum DatasetRef {
    /// A known dataset fetched into the cache.
    Known {
        spec: &'static RemoteSpec,
        class_names: Vec<String>,
    },
    /// A folder holding the four IDX files.
    Folder(PathBuf),
}

impl DatasetRef {
    /// `mnist`, `fashion-mnist` (or `fashion`), or the path of an existing folder.
    pub fn parse(name: &str) -> Result<DatasetRef> {
        match name.to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetRef::Known {
                spec: &fetch::MNIST,
                class_names: (0..10).map(|d| d.to_string()).collect(),
            }),
            "fashion-mnist" | "fashion" | "fashion_mnist" => Ok(DatasetRef::Known {
                spec: &fetch::FASHION_MNIST,
                class_names: FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
            }),
            _ => {
                let p = PathBuf::from(name);
                if p.is_dir() {
                    Ok(DatasetRef::Folder(p))
                } else if p.exists() {
                    Err(Error::format(
                        p,
                        "is a file; --dataset takes mnist, fashion-mnist or a folder holding the four IDX files",
                    ))
                } else {
                    Err(Error::UnknownName {
                        kind: "dataset",
                        name: name.to_string(),
                        options:
                            "mnist, fashion-mnist, or the path of a folder with the four IDX files"
                                .into(),
                    })
                }
            }
        }
    }

    /// A short name for messages and metadata.
    pub fn name(&self) -> String {
        match self {
            DatasetRef::Known { spec, .. } => spec.id.to_string(),
            DatasetRef::Folder(p) => p.display().to_string(),
        }
    }

    /// Where the files are (fetching known datasets first if needed).
    pub fn ensure_files(&self, opts: &FetchOptions) -> Result<PathBuf> {
        match self {
            DatasetRef::Known { spec, .. } => fetch::ensure(spec, opts),
            DatasetRef::Folder(p) => Ok(p.clone()),
        }
    }

    /// Fetches if needed and loads both parts.
    pub fn load(&self, opts: &FetchOptions) -> Result<Splits> {
        let dir = self.ensure_files(opts)?;
        let names = match self {
            DatasetRef::Known { class_names, .. } => Some(class_names.clone()),
            DatasetRef::Folder(_) => None,
        };
        load_dir(&dir, &self.name(), names)
    }
}

/// Finds `base` or `base.gz` in `dir`.
pub fn find_file(dir: &Path, base: &str) -> Result<PathBuf> {
    for cand in [dir.join(base), dir.join(format!("{base}.gz"))] {
        // (the link itself, so that a dangling link or a loop of links is reported as
        // what it is when read, not as a missing file)
        if std::fs::symlink_metadata(&cand).is_ok() {
            return Ok(cand);
        }
    }
    Err(Error::format(
        dir,
        format!(
            "has no {base} (or {base}.gz); a dataset folder needs {}",
            FILE_NAMES.join(", ")
        ),
    ))
}

fn load_part(
    dir: &Path,
    images: &str,
    labels: &str,
    name: &str,
) -> Result<(idx::Images, Vec<u8>, PathBuf)> {
    let ip = find_file(dir, images)?;
    let lp = find_file(dir, labels)?;
    let im = idx::read_images(&ip)?;
    let lab = idx::read_labels(&lp)?;
    if im.count != lab.len() {
        return Err(Error::format(
            &lp,
            format!(
                "{} labels but {} has {} images ({name} part); the counts must match",
                lab.len(),
                ip.display(),
                im.count
            ),
        ));
    }
    if im.height == 0 || im.width == 0 {
        return Err(Error::format(&ip, "images of size 0"));
    }
    Ok((im, lab, lp))
}

/// Loads the four IDX files of a folder and checks them against each other.
/// With `class_names` (a known dataset) every label must be below their count;
/// without, the class count is the largest training label + 1.
pub fn load_dir(dir: &Path, name: &str, class_names: Option<Vec<String>>) -> Result<Splits> {
    if !dir.is_dir() {
        return Err(Error::format(dir, "is not a folder"));
    }
    let (tri, trl, trl_path) = load_part(dir, FILE_NAMES[0], FILE_NAMES[1], "train")?;
    let (tei, tel, tel_path) = load_part(dir, FILE_NAMES[2], FILE_NAMES[3], "test")?;
    if (tri.height, tri.width) != (tei.height, tei.width) {
        return Err(Error::format(
            dir,
            format!(
                "train images are {}x{} but test images are {}x{}",
                tri.height, tri.width, tei.height, tei.width
            ),
        ));
    }
    if trl.is_empty() {
        return Err(Error::format(&trl_path, "no training examples"));
    }
    if tel.is_empty() {
        return Err(Error::format(
            &tel_path,
            "no test examples (a dataset needs at least one to report an accuracy)",
        ));
    }
    let class_names = class_names.unwrap_or_else(|| {
        let k = *trl.iter().max().unwrap_or(&0) as usize + 1;
        (0..k).map(|c| c.to_string()).collect()
    });
    for (labels, path) in [(&trl, &trl_path), (&tel, &tel_path)] {
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize >= class_names.len())
        {
            return Err(Error::format(
                path,
                format!(
                    "label {l} at index {i} is outside the class range 0..{}",
                    class_names.len()
                ),
            ));
        }
    }
    let make = |im: idx::Images, labels: Vec<u8>, part: &str| Dataset {
        name: format!("{name} {part}"),
        images: Matrix::from_vec(im.count, im.height * im.width, im.pixels),
        labels,
        height: im.height,
        width: im.width,
        class_names: class_names.clone(),
    };
    Ok(Splits {
        train: make(tri, trl, "train"),
        test: make(tei, tel, "test"),
    })
}
