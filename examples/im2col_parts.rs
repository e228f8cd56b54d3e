//! Times `im2col` and `col2im` alone, one thread, on every convolution of the
//! `cnn-best` preset (and the `cnn` lab's first two), per image; the best of 5 rounds.
//! `cargo run --release --example im2col_parts`
use nnlab::rng::Rng;
use nnlab::tensor::im2col::{Axis, Window, col2im, im2col};
use std::time::Instant;

fn main() {
    // (channels, input side, kernel, stride, padding)
    let layers = [
        ("cnn-best 1", 1, 28, 3, 1, 0),
        ("cnn-best 2", 32, 26, 3, 1, 0),
        ("cnn-best 3", 32, 24, 5, 2, 2),
        ("cnn-best 4", 32, 12, 3, 1, 0),
        ("cnn-best 5", 64, 10, 3, 1, 0),
        ("cnn-best 6", 64, 8, 5, 2, 2),
        ("cnn-best 7", 64, 4, 4, 1, 0),
        ("cnn 1", 1, 28, 3, 1, 1),
        ("cnn 2", 32, 14, 3, 1, 1),
    ];
    let mut rng = Rng::new(1);
    println!("µs per image, best of 5 rounds of 200 images");
    let (mut total_im, mut total_col) = (0.0, 0.0);
    for (name, c, hw, k, s, p) in layers {
        let axis = Axis::padded(hw, k, s, p).unwrap();
        let g = Window {
            channels: c,
            y: axis,
            x: axis,
        };
        let img: Vec<f32> = (0..g.in_size()).map(|_| rng.normal()).collect();
        let mut cols = vec![0.0; g.patch() * g.out_pixels()];
        let mut back = vec![0.0; g.in_size()];
        let (mut best_im, mut best_col) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..200 {
                im2col(&g, std::hint::black_box(&img), &mut cols);
            }
            best_im = best_im.min(t.elapsed().as_secs_f64() * 1e6 / 200.0);
            let t = Instant::now();
            for _ in 0..200 {
                col2im(&g, std::hint::black_box(&cols), &mut back);
            }
            best_col = best_col.min(t.elapsed().as_secs_f64() * 1e6 / 200.0);
        }
        if name.starts_with("cnn-best") {
            total_im += best_im;
            total_col += best_col;
        }
        println!(
            "{name:<11} {c:>3}x{hw}x{hw} k{k} s{s} p{p}: im2col {best_im:8.2}, col2im {best_col:8.2}"
        );
    }
    println!("cnn-best, all seven: im2col {total_im:.1}, col2im {total_col:.1}");
}
