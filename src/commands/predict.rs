//! `nnlab predict`: the top-3 classes of one image with a saved model.

use super::outln;
use super::{check_fits, load_dataset, load_model};
use crate::cli::{PredictArgs, Split};
use nnlab::io::image_input::{SIDE, load_digit};
use nnlab::loss::softmax;
use nnlab::render::{TextStyle, draw};
use nnlab::tensor::Matrix;

pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    let mut m = load_model(&args.model, args.json)?;
    let (h, w) = m.meta.input_shape;
    let (pixels, source, label) = match (&args.image, args.index) {
        (Some(p), _) => {
            if (h, w) != (SIDE, SIDE) {
                anyhow::bail!(
                    "{} takes {h}x{w} images; image files are prepared as {SIDE}x{SIDE} MNIST-style digits",
                    args.model.display()
                );
            }
            (load_digit(p, args.invert)?, p.display().to_string(), None)
        }
        (None, Some(i)) => {
            let dataset = if m.meta.dataset.is_empty() {
                "mnist".to_string()
            } else {
                m.meta.dataset.clone()
            };
            let s = load_dataset(&dataset, &args.data, args.json)?;
            let d = if args.split == Split::Train {
                &s.train
            } else {
                &s.test
            };
            check_fits(&m, d)?;
            if i >= d.len() {
                anyhow::bail!(
                    "--index {i} is out of range: {} has {} images",
                    d.name,
                    d.len()
                );
            }
            (
                d.images.row(i).to_vec(),
                format!("{} #{i}", d.name),
                Some(d.labels[i]),
            )
        }
        (None, None) => anyhow::bail!("give --image PATH or --index N"),
    };
    let x = Matrix::from_vec(1, h * w, pixels);
    let mut rng = nnlab::Rng::new(0);
    let rt = args.rt.runtime();
    let _fp = rt.enter();
    let logits = m
        .model
        .forward(&x, nnlab::layers::Mode::Eval, &mut rng, &rt)
        .clone();
    let mut probs = Matrix::zeros(1, m.model.classes);
    softmax(&logits, &mut probs);
    let mut order: Vec<usize> = (0..m.model.classes).collect();
    order.sort_by(|&a, &b| probs.data[b].total_cmp(&probs.data[a]));
    let top: Vec<(usize, f32)> = order.iter().take(3).map(|&c| (c, probs.data[c])).collect();
    let names = &m.meta.class_names;
    if args.json {
        let v = serde_json::json!({
            "input": source,
            "label": label,
            "top": top.iter().map(|&(c, p)| serde_json::json!({"class": c, "name": names[c], "probability": p})).collect::<Vec<_>>(),
        });
        super::print_json(v);
    } else {
        let style = if args.ascii {
            TextStyle::Ascii
        } else {
            TextStyle::Blocks
        };
        outln!(
            "{source}{}",
            label.map_or(String::new(), |l| format!(
                " (label {l}: {})",
                names[l as usize]
            ))
        );
        outln!("{}", draw(&x.data, h, w, style));
        for (rank, &(c, p)) in top.iter().enumerate() {
            outln!("{}. {:<12} {:>6.2}%", rank + 1, names[c], 100.0 * p);
        }
    }
    Ok(())
}
