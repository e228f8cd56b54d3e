//! The IDX file format (LeCun et al., the MNIST distribution format): a general parser
//! and writer. Files may be raw or gzip-compressed; compression is detected from the
//! content (gzip's magic `1f 8b`), not the file name.
//!
//! Layout: `00 00 TT RR` (TT = element type code, RR = rank), then RR big-endian `u32`
//! dimensions, then the elements in row-major order. nnlab reads unsigned-byte files
//! (type 0x08), which is what image and label files use.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Largest decompressed size accepted (guards against a gzip bomb): 1 GiB.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// An unsigned-byte IDX array.
///
/// # Shapes
/// `data.len() == dims.iter().product()`.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Grey images decoded from a rank-3 IDX file, as floats in [0, 1] (pixel / 255).
///
/// # Shapes
/// `pixels.len() == count * height * width`, image `i` row-major at `i * height * width`.
#[derive(Clone, Debug)]
pub struct Images {
    pub count: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<f32>,
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "not an IDX type",
    }
}

/// Returns the bytes, decompressed if they are a gzip stream.
pub fn decompress_if_gzip(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        let dec = flate2::read::MultiGzDecoder::new(&bytes[..]);
        dec.take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, format!("corrupt or truncated gzip stream: {e}")))?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(Error::format(path, "decompresses to more than 1 GiB"));
        }
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Reads a whole file (raw or gzip) into memory, decompressed.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let bytes = crate::files::read_regular(path, "an IDX file")?;
    decompress_if_gzip(bytes, path)
}

/// Parses IDX bytes (already decompressed). `path` is only used in error messages.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.is_empty() {
        return Err(Error::format(path, "empty file, expected an IDX header"));
    }
    if bytes.len() < 4 {
        return Err(Error::format(
            path,
            format!(
                "{} bytes is too short for an IDX header (4 bytes)",
                bytes.len()
            ),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::format(
            path,
            format!(
                "bad magic number {:02x} {:02x} {:02x} {:02x}: an IDX file starts with 00 00",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let code = bytes[2];
    if code != 0x08 {
        return Err(Error::format(
            path,
            format!(
                "element type code 0x{code:02x} ({}) is not supported; expected 0x08 (unsigned byte)",
                type_name(code)
            ),
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(Error::format(path, "rank 0 is not a valid IDX array"));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(Error::format(
            path,
            format!(
                "truncated header: rank {rank} needs {header} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let mut dims = Vec::with_capacity(rank);
    let mut count: u128 = 1;
    for i in 0..rank {
        let b = &bytes[4 + 4 * i..8 + 4 * i];
        let d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        count *= d as u128;
        dims.push(d);
    }
    let body = (bytes.len() - header) as u128;
    if body != count {
        let what = if body < count {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(Error::format(
            path,
            format!(
                "{what}: dims {dims:?} need {count} data bytes after the {header}-byte header, file has {body}"
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Encodes an unsigned-byte IDX array (for tests, tools and exports).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), data.len());
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Reads a rank-3 image file `(count, height, width)` as floats in [0, 1].
pub fn read_images(path: &Path) -> Result<Images> {
    let arr = parse(&read_maybe_gz(path)?, path)?;
    images_from(arr, path)
}

/// Converts a parsed array into images, checking the rank.
pub fn images_from(arr: IdxArray, path: &Path) -> Result<Images> {
    if arr.dims.len() != 3 {
        return Err(Error::format(
            path,
            format!(
                "rank {} (dims {:?}), expected rank 3 (count, height, width) for an image file",
                arr.dims.len(),
                arr.dims
            ),
        ));
    }
    crate::memory::check_fits(
        &format!("{} as floats ({:?} pixels)", path.display(), arr.dims),
        4.0 * arr.data.len() as f64,
        "the file declares more images than fit; is it the right file?",
    )?;
    Ok(Images {
        count: arr.dims[0],
        height: arr.dims[1],
        width: arr.dims[2],
        pixels: arr.data.iter().map(|&p| p as f32 / 255.0).collect(),
    })
}

/// Reads a rank-1 label file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let arr = parse(&read_maybe_gz(path)?, path)?;
    labels_from(arr, path)
}

/// Converts a parsed array into labels, checking the rank.
pub fn labels_from(arr: IdxArray, path: &Path) -> Result<Vec<u8>> {
    if arr.dims.len() != 1 {
        return Err(Error::format(
            path,
            format!(
                "rank {} (dims {:?}), expected rank 1 for a label file",
                arr.dims.len(),
                arr.dims
            ),
        ));
    }
    Ok(arr.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("x.idx")
    }

    #[test]
    fn round_trip_shapes() {
        for dims in [
            vec![5],
            vec![3, 4],
            vec![2, 28, 28],
            vec![1, 2, 3, 4],
            vec![0, 7],
        ] {
            let n: usize = dims.iter().product();
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
            let arr = parse(&encode(&dims, &data), p()).unwrap();
            assert_eq!(arr.dims, dims);
            assert_eq!(arr.data, data);
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let good = encode(&[2, 2, 2], &[0; 8]);
        let msg = |b: &[u8]| parse(b, p()).unwrap_err().to_string();
        assert!(msg(&[]).contains("empty file"));
        assert!(msg(&[1, 0, 8, 1, 0, 0, 0, 0]).contains("magic"));
        let mut f = good.clone();
        f[2] = 0x0D;
        assert!(msg(&f).contains("0x0d (f32)"));
        assert!(msg(&good[..good.len() - 1]).contains("truncated"));
        let mut t = good.clone();
        t.push(0);
        assert!(msg(&t).contains("trailing bytes"));
        assert!(msg(&good[..6]).contains("truncated header"));
        assert!(parse(&good, p()).is_ok());
        let r = images_from(parse(&encode(&[4], &[0; 4]), p()).unwrap(), p()).unwrap_err();
        assert!(r.to_string().contains("expected rank 3"));
        let r = labels_from(parse(&good, p()).unwrap(), p()).unwrap_err();
        assert!(r.to_string().contains("expected rank 1"));
    }

    #[test]
    fn gzip_detected_by_content() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let raw = encode(&[3, 2, 2], &[9; 12]);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&raw).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decompress_if_gzip(gz.clone(), p()).unwrap(), raw);
        assert_eq!(decompress_if_gzip(raw.clone(), p()).unwrap(), raw);
        let cut = gz[..gz.len() / 2].to_vec();
        let e = decompress_if_gzip(cut, p()).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");
    }

    proptest! {
        // 2000 cases by default; PROPTEST_CASES=N runs more (the long fuzz run).
        #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(2000), ..ProptestConfig::default() })]
        /// Arbitrary bytes, raw or behind a gzip magic, never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes, p());
            let mut gz = vec![0x1f, 0x8b];
            gz.extend_from_slice(&bytes);
            let _ = decompress_if_gzip(gz, p());
        }

        /// Valid headers with arbitrary dims: accepted exactly when the length fits.
        #[test]
        fn dims_checked(dims in proptest::collection::vec(0usize..6, 1..4), extra in 0usize..3, cut in 0usize..3) {
            let n: usize = dims.iter().product();
            let mut b = encode(&dims, &vec![1; n]);
            b.extend(std::iter::repeat_n(0, extra));
            let keep = b.len().saturating_sub(cut);
            b.truncate(keep);
            let ok = parse(&b, p()).is_ok();
            prop_assert_eq!(ok, extra == cut);
        }
    }
}
