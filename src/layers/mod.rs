//! Layers: each file holds one layer's forward pass and, right under it, its backward
//! pass. The model (`Sequential`) owns the activation buffers between layers; a layer
//! owns its parameters, their gradients and whatever it must remember from forward
//! (a dropout mask, a max index).
//!
//! # Gradient convention
//! `backward` **overwrites** the layer's parameter gradients and `dx`; it never adds to
//! them. One backward per optimiser step, so nothing needs zeroing. Blocks that feed
//! one input to several paths (residual, branch) sum the paths' `dx` themselves.

pub mod activation;
pub mod avgpool;
pub mod batch_norm;
pub mod branch;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod flatten;
pub mod gru;
pub mod lstm;
pub mod maxout;
pub mod maxpool;
pub mod recurrent;
pub mod residual;
pub mod rnn;
pub mod sequential;

pub use activation::{Activation, ActivationLayer};
pub use avgpool::AvgPool2d;
pub use batch_norm::BatchNorm;
pub use branch::{Branch, Merge};
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use gru::Gru;
pub use lstm::Lstm;
pub use maxout::Maxout;
pub use maxpool::MaxPool2d;
pub use residual::Residual;
pub use rnn::Rnn;
pub use sequential::Sequential;

use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// Training or evaluation: dropout drops and batch norm uses batch statistics only
/// in training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// The shape of one example as a layer takes or gives it. A batch is a `Matrix` with
/// one example a row, each row this shape's elements in row-major order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Features {
    /// `f` features.
    Vector(usize),
    /// `c` channels of `h x w` pixels, laid out `(c, h, w)`.
    Image { c: usize, h: usize, w: usize },
    /// `t` steps of `f` features, laid out `(t, f)`.
    Sequence { t: usize, f: usize },
}

impl From<usize> for Features {
    /// A vector of `n`.
    fn from(n: usize) -> Self {
        Features::Vector(n)
    }
}

impl Features {
    /// Whether a layer that takes `takes` can read examples of this shape. Besides the
    /// same shape: any shape feeds a vector of as many elements (flattened in layout
    /// order, as `nn.Flatten` would), and a one-channel image `h x w` feeds a sequence
    /// of `h` steps of `w` (its rows, top to bottom).
    pub fn feeds(&self, takes: Features) -> bool {
        match (*self, takes) {
            (a, b) if a == b => true,
            (a, Features::Vector(n)) => a.size() == n,
            (Features::Image { c: 1, h, w }, Features::Sequence { t, f }) => (h, w) == (t, f),
            _ => false,
        }
    }

    /// Elements per example.
    pub fn size(&self) -> usize {
        match *self {
            Features::Vector(f) => f,
            Features::Image { c, h, w } => c.saturating_mul(h).saturating_mul(w),
            Features::Sequence { t, f } => t.saturating_mul(f),
        }
    }
}

impl std::fmt::Display for Features {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Features::Vector(n) => write!(f, "a vector of {n}"),
            Features::Image { c, h, w } => write!(f, "an image of {c}x{h}x{w} (c, h, w)"),
            Features::Sequence { t, f: n } => write!(f, "a sequence of {t} steps of {n} (t, f)"),
        }
    }
}

/// What a forward pass runs with: training or evaluation, the run's one RNG (random
/// layers draw from it in training only), and the runtime.
pub struct Pass<'a> {
    pub mode: Mode,
    pub rng: &'a mut Rng,
    pub rt: &'a Runtime,
}

impl<'a> Pass<'a> {
    /// A pass in `mode`.
    pub fn new(mode: Mode, rng: &'a mut Rng, rt: &'a Runtime) -> Self {
        Pass { mode, rng, rt }
    }
}

/// The shape of a parameter tensor, up to rank 4, without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub dims: [usize; 4],
    pub rank: usize,
}

impl Shape {
    /// A vector of `n`.
    pub fn vector(n: usize) -> Self {
        Shape {
            dims: [n, 0, 0, 0],
            rank: 1,
        }
    }
    /// A `rows x cols` matrix.
    pub fn matrix(rows: usize, cols: usize) -> Self {
        Shape {
            dims: [rows, cols, 0, 0],
            rank: 2,
        }
    }
    /// The dimensions as a slice.
    pub fn as_slice(&self) -> &[usize] {
        &self.dims[..self.rank]
    }
}

/// One trainable tensor, seen by optimisers, savers and gradient checks.
pub struct Param<'a> {
    /// Name within its layer, PyTorch's: `weight`, `bias`; containers qualify the
    /// names of what they hold (`3.weight`, `f.0.bias`), as a `state_dict` would.
    pub name: &'a str,
    pub value: &'a mut [f32],
    pub grad: &'a [f32],
    pub shape: Shape,
    /// Whether L2 / weight decay applies (weights yes, biases no).
    pub decay: bool,
    /// Whether `value` (and `grad`) hold the tensor transposed: a rank-2 `shape`
    /// `(r, c)` stored as its `(c, r)` transpose, element `(i, j)` at `value[j * r + i]`.
    /// `Dense` stores its `(out, in)` weight this way (see there); files, reports and
    /// RBM loading see `shape`'s row-major order through [`Param::to_row_major`] and
    /// [`Param::set_row_major`]. Elementwise users (optimisers, gradient checks) need
    /// not care.
    pub transposed: bool,
}

impl Param<'_> {
    /// The tensor's values in `shape`'s row-major order (PyTorch's), copied.
    pub fn to_row_major(&self) -> Vec<f32> {
        row_major(self.value, self.shape, self.transposed)
    }

    /// Sets the tensor from values in `shape`'s row-major order.
    ///
    /// # Panics
    /// If `src` has another length than the tensor.
    pub fn set_row_major(&mut self, src: &[f32]) {
        set_from_row_major(self.value, src, self.shape, self.transposed)
    }
}

/// `stored` (a tensor of `shape`, held transposed if `transposed`, see
/// [`Param::transposed`]) in `shape`'s row-major order. Also for buffers laid out like
/// a parameter, such as the optimiser's moments.
///
/// # Shapes
/// `stored: (shape.size(),)` -> the same length.
pub fn row_major(stored: &[f32], shape: Shape, transposed: bool) -> Vec<f32> {
    if !transposed {
        return stored.to_vec();
    }
    let [r, c, ..] = shape.dims;
    let mut out = vec![0.0; r * c];
    for (j, col) in stored.chunks_exact(r).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            out[i * c + j] = v;
        }
    }
    out
}

/// The inverse of [`row_major`]: fills `stored` from `src` in `shape`'s row-major order.
///
/// # Shapes
/// `stored, src`: as many elements as `shape` has.
///
/// # Panics
/// If `src` has another length than `stored`.
pub fn set_from_row_major(stored: &mut [f32], src: &[f32], shape: Shape, transposed: bool) {
    assert_eq!(src.len(), stored.len(), "set_from_row_major: length");
    if !transposed {
        return stored.copy_from_slice(src);
    }
    let [r, c, ..] = shape.dims;
    for (i, row) in src.chunks_exact(c).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            stored[j * r + i] = v;
        }
    }
}

/// A differentiable layer.
///
/// # Shapes
/// `x: (batch, input().size())`, `y: (batch, output().size())`, `dy` like `y`, `dx`
/// like `x`. The caller shapes `y` and `dx` before the call.
pub trait Layer: Send {
    /// One line, e.g. `dense 784 -> 256`.
    fn describe(&self) -> String;
    /// The shape of one example this layer takes.
    fn input(&self) -> Features;
    /// The shape of one example this layer gives.
    fn output(&self) -> Features;
    /// `y = f(x)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>);
    /// Given the `x` and `y` of the last forward and `dy = dL/dy`, overwrites the
    /// parameter gradients and, when `dx` is given, `dx = dL/dx`.
    fn backward(
        &mut self,
        x: &Matrix,
        y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    );
    /// Visits each trainable tensor (in a fixed order: the optimiser's state relies on it).
    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>));
    /// Visits non-trainable state that must be saved (batch-norm running statistics),
    /// named like parameters.
    fn visit_buffers(&mut self, _f: &mut dyn FnMut(&str, &mut [f32])) {}

    /// Elements per example in: `input().size()`.
    fn in_dim(&self) -> usize {
        self.input().size()
    }
    /// Elements per example out: `output().size()`.
    fn out_dim(&self) -> usize {
        self.output().size()
    }
}

/// Sums the rows of `dy` into `db`: the bias gradient of any affine layer.
///
/// # Shapes
/// `dy: (batch, n)`, `db: (n,)`.
pub fn column_sums(dy: &Matrix, db: &mut [f32]) {
    db.fill(0.0);
    for r in 0..dy.rows {
        for (d, &g) in db.iter_mut().zip(dy.row(r)) {
            *d += g;
        }
    }
}

/// Writes `b` into every row of `y` (the start of an affine layer's `y = x W + b`).
///
/// # Shapes
/// `y: (batch, n)`, `b: (n,)`.
pub fn broadcast_rows(y: &mut Matrix, b: &[f32]) {
    for r in 0..y.rows {
        y.row_mut(r).copy_from_slice(b);
    }
}

/// Visits an affine layer's weight and bias `(out,)` with their gradients, under
/// PyTorch's names; weights take weight decay, biases do not. The weight is `w: (out,
/// in)`, or, with `transposed`, `w: (in, out)` holding the `(out, in)` weight's transpose.
pub fn visit_affine(
    w: &mut Matrix,
    dw: &Matrix,
    b: &mut [f32],
    db: &[f32],
    transposed: bool,
    f: &mut dyn FnMut(Param<'_>),
) {
    let shape = match transposed {
        false => Shape::matrix(w.rows, w.cols),
        true => Shape::matrix(w.cols, w.rows),
    };
    f(Param {
        name: "weight",
        value: &mut w.data,
        grad: &dw.data,
        shape,
        decay: true,
        transposed,
    });
    f(Param {
        name: "bias",
        shape: Shape::vector(b.len()),
        value: b,
        grad: db,
        decay: false,
        transposed: false,
    });
}

/// The qualified names of a layer's parameters and buffers, each with `prefix` in
/// front, in visiting order (computed once, when a container takes the layer).
pub fn qualified_names(layer: &mut dyn Layer, prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut params = Vec::new();
    layer.visit_params(&mut |p| params.push(format!("{prefix}{}", p.name)));
    let mut buffers = Vec::new();
    layer.visit_buffers(&mut |name, _| buffers.push(format!("{prefix}{name}")));
    (params, buffers)
}

/// Visits `layer`'s parameters under the precomputed `names` (no allocation).
pub fn visit_renamed(layer: &mut dyn Layer, names: &[String], f: &mut dyn FnMut(Param<'_>)) {
    let mut k = 0;
    layer.visit_params(&mut |p| {
        let name = &names[k];
        k += 1;
        f(Param { name, ..p })
    });
}

/// Visits `layer`'s buffers under the precomputed `names` (no allocation).
pub fn visit_buffers_renamed(
    layer: &mut dyn Layer,
    names: &[String],
    f: &mut dyn FnMut(&str, &mut [f32]),
) {
    let mut k = 0;
    layer.visit_buffers(&mut |_, v| {
        f(&names[k], v);
        k += 1;
    });
}
