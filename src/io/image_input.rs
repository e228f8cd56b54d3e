//! The user's own digit images (PNG, JPEG, PGM/PPM, any size or colour), turned into
//! what MNIST digits look like: grey ink on black, the ink's bounding box scaled to fit
//! 20x20 keeping its aspect ratio, and placed in 28x28 so that its centre of mass sits
//! at the centre (LeCun et al.'s description of how MNIST was made).

use crate::error::{Error, Result};
use image::{ImageBuffer, Luma, imageops};
use std::path::Path;

/// Whether to invert the image so that ink becomes bright.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Invert {
    /// Invert when the border is lighter than the middle grey (dark ink on paper).
    Auto,
    Yes,
    No,
}

/// Output geometry: the digit fits in `BOX x BOX` inside `SIDE x SIDE`.
pub const SIDE: usize = 28;
const BOX: usize = 20;

/// The largest width or height accepted, checked from the file's header before any
/// pixel is decoded (a small file may declare 20000 x 20000 pixels).
pub const MAX_SIDE: u32 = 8192;

/// The most memory the decoder may allocate for one image: a 16-megapixel RGBA
/// picture (a phone's photo of a digit fits; decoding takes a fraction of a second).
const MAX_DECODE_BYTES: u64 = 64 << 20;

/// The most pixels accepted (preparing the digit takes a few floats per pixel).
pub const MAX_PIXELS: u64 = 16 << 20;

/// Loads and preprocesses an image file into `SIDE * SIDE` values in [0, 1].
pub fn load_digit(path: &Path, invert: Invert) -> Result<Vec<f32>> {
    let bytes = crate::files::read_regular(path, "an image file (PNG, JPEG, PGM/PPM)")?;
    digit_from_bytes(&bytes, invert).map_err(|reason| Error::format(path, reason))
}

/// Decodes `bytes`, its dimensions checked against [`MAX_SIDE`] before decoding.
fn decode(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read the image: {e}"))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    match reader.decode() {
        Ok(img) if img.width() as u64 * img.height() as u64 > MAX_PIXELS => Err(format!(
            "the image is too large: {} x {} pixels, at most {} million are accepted",
            img.width(),
            img.height(),
            MAX_PIXELS >> 20
        )),
        Ok(img) => Ok(img),
        Err(image::ImageError::Limits(e)) => Err(format!(
            "the image is too large ({e}): at most {MAX_SIDE} x {MAX_SIDE} pixels and {} MB \
             to decode are accepted",
            MAX_DECODE_BYTES >> 20
        )),
        Err(e) => Err(format!(
            "cannot decode the image ({} bytes): {e}",
            bytes.len()
        )),
    }
}

/// Decodes an image held in memory (PNG, JPEG, PGM/PPM; an upload, say) and
/// preprocesses it like [`load_digit`]. The error says what is wrong with the bytes.
pub fn digit_from_bytes(bytes: &[u8], invert: Invert) -> std::result::Result<Vec<f32>, String> {
    if bytes.is_empty() {
        return Err("cannot decode an empty image (0 bytes)".into());
    }
    let img = decode(bytes)?;
    let grey = img.to_luma32f();
    let (w, h) = grey.dimensions();
    if w == 0 || h == 0 {
        return Err("the image is empty (0 pixels)".into());
    }
    preprocess(grey.as_raw(), w as usize, h as usize, invert)
}

/// Preprocesses a grey image (`h x w`, row-major, 0 = black, 1 = white).
pub fn preprocess(
    pixels: &[f32],
    w: usize,
    h: usize,
    invert: Invert,
) -> std::result::Result<Vec<f32>, String> {
    let (min, max) = pixels
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    if max - min < 1e-3 {
        return Err(format!(
            "the image is all one colour ({min:.3}); there is no digit to find"
        ));
    }
    // Border mean decides "dark ink on a light background".
    let mut border = 0f64;
    let mut n = 0usize;
    for y in 0..h {
        for x in 0..w {
            if y == 0 || x == 0 || y == h - 1 || x == w - 1 {
                border += pixels[y * w + x] as f64;
                n += 1;
            }
        }
    }
    let light_background = border / n as f64 > 0.5;
    let flip = match invert {
        Invert::Auto => light_background,
        Invert::Yes => true,
        Invert::No => false,
    };
    // ink in [0, 1], stretched to the image's own range
    let ink: Vec<f32> = pixels
        .iter()
        .map(|&v| {
            let v = (v - min) / (max - min);
            if flip { 1.0 - v } else { v }
        })
        .collect();
    // bounding box of the ink (pixels above 5% of full ink)
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if ink[y * w + x] > 0.05 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    if x0 > x1 {
        return Err("no ink found (try --invert yes or no)".into());
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop: ImageBuffer<Luma<f32>, Vec<f32>> =
        ImageBuffer::from_fn(cw as u32, ch as u32, |x, y| {
            Luma([ink[(y0 + y as usize) * w + x0 + x as usize]])
        });
    // scale the longer side to BOX
    let scale = BOX as f32 / cw.max(ch) as f32;
    let nw = ((cw as f32 * scale).round() as u32).clamp(1, BOX as u32);
    let nh = ((ch as f32 * scale).round() as u32).clamp(1, BOX as u32);
    let small = imageops::resize(&crop, nw, nh, imageops::FilterType::Triangle);
    // centre of mass of the scaled digit
    let (mut sx, mut sy, mut s) = (0f64, 0f64, 0f64);
    for (x, y, p) in small.enumerate_pixels() {
        let v = p.0[0].max(0.0) as f64;
        sx += v * x as f64;
        sy += v * y as f64;
        s += v;
    }
    let (cx, cy) = if s > 0.0 {
        (sx / s, sy / s)
    } else {
        (nw as f64 / 2.0, nh as f64 / 2.0)
    };
    // MNIST puts the centre of mass at pixel (14, 14) of 28x28.
    let centre = SIDE as f64 / 2.0;
    let ox = ((centre - cx).round() as i64).clamp(0, (SIDE - nw as usize) as i64) as usize;
    let oy = ((centre - cy).round() as i64).clamp(0, (SIDE - nh as usize) as i64) as usize;
    let mut out = vec![0f32; SIDE * SIDE];
    for (x, y, p) in small.enumerate_pixels() {
        out[(oy + y as usize) * SIDE + ox + x as usize] = p.0[0].clamp(0.0, 1.0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark bar on white, off-centre in a large image: inverted, boxed to 20 tall,
    /// centred.
    #[test]
    fn inverts_crops_scales_and_centres() {
        let (w, h) = (100, 60);
        let mut px = vec![1.0f32; w * h];
        for y in 5..45 {
            for x in 70..80 {
                px[y * w + x] = 0.0;
            }
        }
        let out = preprocess(&px, w, h, Invert::Auto).unwrap();
        let rows: Vec<usize> = (0..SIDE)
            .filter(|&y| (0..SIDE).any(|x| out[y * SIDE + x] > 0.5))
            .collect();
        assert_eq!(rows.len(), 20, "the 40-pixel bar scales to 20 rows");
        let cols: Vec<usize> = (0..SIDE)
            .filter(|&x| (0..SIDE).any(|y| out[y * SIDE + x] > 0.5))
            .collect();
        assert!((4..=6).contains(&cols.len()), "aspect kept: {cols:?}");
        let mid = (cols[0] + cols[cols.len() - 1]) as f32 / 2.0;
        assert!((mid - 14.0).abs() <= 1.0, "centred: {mid}");
        assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
        // an image that is all one colour has no digit
        assert!(
            preprocess(&[0.7; 16], 4, 4, Invert::Auto)
                .unwrap_err()
                .contains("one colour")
        );
        // with inversion forced off, white paper is all "ink" and the bar is the hole
        assert!(preprocess(&px, w, h, Invert::No).is_ok());
    }
}
