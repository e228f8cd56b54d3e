//! Digits drawn as text, shared by `data show`, `predict` and the lab's closing
//! "Label / Prediction" lines.

/// How to draw pixels in a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TextStyle {
    /// Unicode half blocks: one character per pixel column, two pixel rows per line.
    Blocks,
    /// ASCII shades: one character per pixel, ten grey levels.
    Ascii,
}

/// Draws a `height x width` image of values in [0, 1] (1 = ink) as lines of text,
/// framed so that blank margins stay visible.
pub fn draw(pixels: &[f32], height: usize, width: usize, style: TextStyle) -> String {
    let px = |r: usize, c: usize| {
        if r < height {
            pixels[r * width + c]
        } else {
            0.0
        }
    };
    let mut out = String::new();
    out.push('+');
    out.push_str(&"-".repeat(width));
    out.push_str("+\n");
    match style {
        TextStyle::Blocks => {
            for r in (0..height).step_by(2) {
                out.push('|');
                for c in 0..width {
                    let (top, bottom) = (px(r, c) >= 0.35, px(r + 1, c) >= 0.35);
                    out.push(match (top, bottom) {
                        (false, false) => ' ',
                        (true, false) => '▀',
                        (false, true) => '▄',
                        (true, true) => '█',
                    });
                }
                out.push_str("|\n");
            }
        }
        TextStyle::Ascii => {
            const SHADES: &[u8] = b" .:-=+*#%@";
            for r in 0..height {
                out.push('|');
                for c in 0..width {
                    let v = px(r, c).clamp(0.0, 1.0);
                    out.push(SHADES[((v * 9.0).round() as usize).min(9)] as char);
                }
                out.push_str("|\n");
            }
        }
    }
    out.push('+');
    out.push_str(&"-".repeat(width));
    out.push('+');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_ascii_shapes() {
        let mut img = vec![0.0; 4 * 3];
        img[0] = 1.0; // (0,0) top of first pair
        img[3 + 1] = 1.0; // (1,1) bottom of first pair
        img[6 + 2] = 1.0; // (2,2) top of second pair
        let b = draw(&img, 4, 3, TextStyle::Blocks);
        let lines: Vec<&str> = b.lines().collect();
        assert_eq!(lines.len(), 4); // frame + 2 + frame
        assert_eq!(lines[1], "|▀▄ |");
        assert_eq!(lines[2], "|  ▀|");
        let a = draw(&img, 4, 3, TextStyle::Ascii);
        assert_eq!(a.lines().count(), 6);
        assert_eq!(a.lines().nth(1).unwrap(), "|@  |");
    }
}
