//! One entry of a model's explicit layer list (`[[model.layers]]` in a TOML config):
//! its fields, their checks, and the shape it gives for a given input.

use crate::error::{Error, Result};
use crate::init::Init;
use crate::layers::{Activation, Features, Merge};
use crate::tensor::im2col::{Axis, Window};
use std::fmt;

/// One entry of an explicit layer list, as written in a TOML config:
/// ```toml
/// [[model.layers]]
/// type = "dense"
/// units = 256
/// [[model.layers]]
/// type = "activation"
/// name = "relu"
/// [[model.layers]]
/// type = "residual"
/// layers = [{ type = "dense", units = 256 }, { type = "activation", name = "relu" }]
/// [[model.layers]]
/// type = "branch"
/// merge = "concat"
/// branches = [[{ type = "dense", units = 64 }], [{ type = "dense", units = 32 }, { type = "activation", name = "tanh" }]]
/// [[model.layers]]
/// type = "conv"
/// channels = 32
/// kernel = 3
/// padding = 1          # or "same"
/// [[model.layers]]
/// type = "maxpool"
/// size = 2             # stride defaults to size
/// [[model.layers]]
/// type = "lstm"
/// units = 128
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum LayerSpec {
    /// Affine layer; initialisers default to the model's. Takes any shape (flattened).
    Dense {
        units: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias_init: Option<Init>,
    },
    /// Elementwise activation.
    Activation { name: Activation },
    /// Maxout with `k` pieces.
    Maxout { units: usize, k: usize },
    /// Inverted dropout keeping units with probability `keep`.
    Dropout { keep: f32 },
    /// Batch normalisation (per feature of a vector, per channel of an image).
    Batchnorm,
    /// `y = x + f(x)` (projection shortcut when the width changes).
    Residual { layers: Vec<LayerSpec> },
    /// Parallel sub-networks merged by `sum` or `concat`.
    Branch {
        merge: Merge,
        branches: Vec<Vec<LayerSpec>>,
    },
    /// 2-D convolution with `channels` filters of `kernel x kernel`; initialisers
    /// default to the model's.
    Conv {
        channels: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: Padding,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias_init: Option<Init>,
    },
    /// Max pooling over `size x size` windows, `stride` apart (default `size`).
    Maxpool {
        size: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        #[serde(default)]
        padding: Padding,
    },
    /// Average pooling, as `maxpool`.
    Avgpool {
        size: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        #[serde(default)]
        padding: Padding,
    },
    /// An image or sequence read as one vector.
    Flatten,
    /// A tanh RNN of `units`, giving its last hidden state; `init` defaults to
    /// PyTorch's U(-1/sqrt(units), 1/sqrt(units)) for weights and biases.
    Rnn {
        units: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
    },
    /// An LSTM of `units`, as `rnn`.
    Lstm {
        units: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
    },
    /// A GRU of `units`, as `rnn`.
    Gru {
        units: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
    },
}

fn one() -> usize {
    1
}

/// Padding of a convolution or pool: `n` pixels on every side (PyTorch's `padding`),
/// or `"same"`, TensorFlow's: as much as keeps `ceil(size / stride)` outputs, the
/// smaller half before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "PaddingText", into = "PaddingText")]
pub enum Padding {
    #[default]
    None,
    Pixels(usize),
    Same,
}

/// How padding is written: a number or a name.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum PaddingText {
    Pixels(usize),
    Name(String),
}

impl TryFrom<PaddingText> for Padding {
    type Error = Error;
    fn try_from(t: PaddingText) -> Result<Padding> {
        match t {
            PaddingText::Pixels(0) => Ok(Padding::None),
            PaddingText::Pixels(n) => Ok(Padding::Pixels(n)),
            PaddingText::Name(s) if s.eq_ignore_ascii_case("same") => Ok(Padding::Same),
            PaddingText::Name(s) if s.eq_ignore_ascii_case("valid") => Ok(Padding::None),
            PaddingText::Name(s) => Err(Error::config(
                "padding",
                s,
                "a number of pixels, \"same\" or \"valid\"",
            )),
        }
    }
}

impl From<Padding> for PaddingText {
    fn from(p: Padding) -> PaddingText {
        match p {
            Padding::None => PaddingText::Pixels(0),
            Padding::Pixels(n) => PaddingText::Pixels(n),
            Padding::Same => PaddingText::Name("same".into()),
        }
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Padding::None => write!(f, "0"),
            Padding::Pixels(n) => write!(f, "{n}"),
            Padding::Same => write!(f, "same"),
        }
    }
}

impl Padding {
    /// The window along one axis of `input` pixels, or why there is none.
    fn axis(&self, input: usize, kernel: usize, stride: usize) -> Option<Axis> {
        match *self {
            Padding::None => Axis::padded(input, kernel, stride, 0),
            Padding::Pixels(p) => Axis::padded(input, kernel, stride, p),
            Padding::Same => Axis::same(input, kernel, stride),
        }
    }
}

/// The window of a `kernel x kernel` convolution or pool, `stride` apart, over
/// `input`, which must be an image; `path` and `what` name it in errors.
pub fn window(
    input: Features,
    kernel: usize,
    stride: usize,
    padding: Padding,
    path: &str,
) -> Result<Window> {
    let Features::Image { c, h, w } = input else {
        return Err(Error::config(
            path,
            input,
            "an image (c, h, w) as its input; put it before any flatten, dense or recurrent layer",
        ));
    };
    match (
        padding.axis(h, kernel, stride),
        padding.axis(w, kernel, stride),
    ) {
        (Some(y), Some(x)) => Ok(Window { channels: c, y, x }),
        _ => Err(Error::config(
            path,
            format!("{kernel}x{kernel} window, stride {stride}, padding {padding} on {input}"),
            "a window that fits the image (kernel at most the padded size; padding less than the kernel)",
        )),
    }
}

/// The sequence a recurrent layer reads from `input`: a sequence, or a one-channel
/// image read row by row.
fn sequence(input: Features, path: &str) -> Result<(usize, usize)> {
    match input {
        Features::Sequence { t, f } => Ok((t, f)),
        Features::Image { c: 1, h, w } => Ok((h, w)),
        other => Err(Error::config(
            path,
            other,
            "a sequence (t, f) or a one-channel image (read as its rows) as its input",
        )),
    }
}

impl LayerSpec {
    /// The spec's name in errors and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Activation { .. } => "activation",
            LayerSpec::Maxout { .. } => "maxout",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Batchnorm => "batchnorm",
            LayerSpec::Residual { .. } => "residual",
            LayerSpec::Branch { .. } => "branch",
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::Maxpool { .. } => "maxpool",
            LayerSpec::Avgpool { .. } => "avgpool",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Rnn { .. } => "rnn",
            LayerSpec::Lstm { .. } => "lstm",
            LayerSpec::Gru { .. } => "gru",
        }
    }

    /// Checks the fields that do not depend on the input (sizes positive, keep in
    /// (0, 1], blocks not empty); `path` names the spec in errors.
    pub fn check(&self, path: &str) -> Result<()> {
        let positive = |field: &str, v: usize| match v {
            0 => Err(Error::config(
                format!("{path}.{field}"),
                0,
                "must be positive",
            )),
            _ => Ok(()),
        };
        let list = |layers: &[LayerSpec], p: &str| {
            layers
                .iter()
                .enumerate()
                .try_for_each(|(i, l)| l.check(&format!("{p}[{i}]")))
        };
        match self {
            LayerSpec::Dense { units, .. }
            | LayerSpec::Rnn { units, .. }
            | LayerSpec::Lstm { units, .. }
            | LayerSpec::Gru { units, .. } => positive("units", *units),
            LayerSpec::Maxout { units, k } => {
                positive("units", *units)?;
                match k {
                    0 => Err(Error::config(format!("{path}.k"), 0, "must be at least 1")),
                    _ => Ok(()),
                }
            }
            LayerSpec::Dropout { keep } if !(*keep > 0.0 && *keep <= 1.0) => Err(Error::config(
                format!("{path}.keep"),
                keep,
                "must be in (0, 1]",
            )),
            LayerSpec::Activation { .. }
            | LayerSpec::Dropout { .. }
            | LayerSpec::Batchnorm
            | LayerSpec::Flatten => Ok(()),
            LayerSpec::Residual { layers } if layers.is_empty() => Err(Error::config(
                format!("{path}.layers"),
                "[]",
                "needs at least one layer (the block is y = x + f(x))",
            )),
            LayerSpec::Residual { layers } => list(layers, &format!("{path}.layers")),
            LayerSpec::Branch { branches, .. } => {
                if branches.is_empty() {
                    return Err(Error::config(
                        format!("{path}.branches"),
                        "[]",
                        "needs at least one branch",
                    ));
                }
                for (k, b) in branches.iter().enumerate() {
                    if b.is_empty() {
                        return Err(Error::config(
                            format!("{path}.branches[{k}]"),
                            "[]",
                            "a branch needs at least one layer",
                        ));
                    }
                    list(b, &format!("{path}.branches[{k}]"))?;
                }
                Ok(())
            }
            LayerSpec::Conv {
                channels,
                kernel,
                stride,
                ..
            } => {
                positive("channels", *channels)?;
                positive("kernel", *kernel)?;
                positive("stride", *stride)
            }
            LayerSpec::Maxpool { size, stride, .. } | LayerSpec::Avgpool { size, stride, .. } => {
                positive("size", *size)?;
                positive("stride", stride.unwrap_or(*size))
            }
        }
    }

    /// The shape this spec gives for examples of shape `input`, or an error naming
    /// `path` when it cannot take them. Fields are assumed checked (`check`).
    pub fn out_shape(&self, input: Features, path: &str) -> Result<Features> {
        let list = |layers: &[LayerSpec], s: Features, p: &str| -> Result<Features> {
            layers
                .iter()
                .enumerate()
                .try_fold(s, |s, (i, l)| l.out_shape(s, &format!("{p}[{i}]")))
        };
        Ok(match self {
            LayerSpec::Dense { units, .. } | LayerSpec::Maxout { units, .. } => {
                Features::Vector(*units)
            }
            LayerSpec::Activation { .. } | LayerSpec::Dropout { .. } | LayerSpec::Batchnorm => {
                input
            }
            LayerSpec::Flatten => Features::Vector(input.size()),
            LayerSpec::Rnn { units, .. }
            | LayerSpec::Lstm { units, .. }
            | LayerSpec::Gru { units, .. } => {
                sequence(input, path)?;
                Features::Vector(*units)
            }
            LayerSpec::Conv {
                channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let g = window(input, *kernel, *stride, *padding, path)?;
                Features::Image {
                    c: *channels,
                    h: g.y.output,
                    w: g.x.output,
                }
            }
            LayerSpec::Maxpool {
                size,
                stride,
                padding,
            }
            | LayerSpec::Avgpool {
                size,
                stride,
                padding,
            } => {
                let g = window(input, *size, stride.unwrap_or(*size), *padding, path)?;
                Features::Image {
                    c: g.channels,
                    h: g.y.output,
                    w: g.x.output,
                }
            }
            // a projection shortcut (when the sizes differ) maps the input to the output
            LayerSpec::Residual { layers } => list(layers, input, &format!("{path}.layers"))?,
            LayerSpec::Branch { merge, branches } => {
                let outs = branches
                    .iter()
                    .enumerate()
                    .map(|(k, b)| list(b, input, &format!("{path}.branches[{k}]")))
                    .collect::<Result<Vec<_>>>()?;
                match merge {
                    Merge::Concat => Features::Vector(outs.iter().map(|o| o.size()).sum()),
                    Merge::Sum if outs.iter().all(|o| o.size() == outs[0].size()) => outs[0],
                    Merge::Sum => {
                        return Err(Error::config(
                            format!("{path}.branches"),
                            format!("{:?}", outs.iter().map(|o| o.size()).collect::<Vec<_>>()),
                            "merge = \"sum\" needs branches of equal output width (or use \"concat\")",
                        ));
                    }
                }
            }
        })
    }
}
