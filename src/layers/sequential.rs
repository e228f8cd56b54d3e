//! A chain of layers. It owns the buffers between them: `acts[i]` is layer i's output
//! and `dacts[i]` the gradient of the loss with respect to it. Buffers grow to the
//! largest batch seen and are then reused, so steady-state steps do not allocate.

use super::{Features, Layer, Param, Pass};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// Layers applied one after another; itself a `Layer`, so blocks can nest.
pub struct Sequential {
    /// Private, so that every layer comes through `push` and its shape check.
    layers: Vec<Box<dyn Layer>>,
    /// acts[i]: (batch, layers[i].out_dim())
    acts: Vec<Matrix>,
    /// dacts[i]: like acts[i]
    dacts: Vec<Matrix>,
    input: Features,
    /// names[i]: qualified names (`i.weight`, ...) of layer i's parameters
    names: Vec<Vec<String>>,
    /// buffer_names[i]: the same for layer i's buffers
    buffer_names: Vec<Vec<String>>,
}

impl Sequential {
    /// A chain taking examples of shape `input`; layers are added with `push`.
    pub fn new(input: impl Into<Features>) -> Self {
        Sequential {
            layers: Vec::new(),
            acts: Vec::new(),
            dacts: Vec::new(),
            input: input.into(),
            names: Vec::new(),
            buffer_names: Vec::new(),
        }
    }

    /// Appends a layer, which must take the shape the chain gives so far; otherwise
    /// the error names both layers (or the chain's input) and both shapes.
    pub fn push(&mut self, mut layer: Box<dyn Layer>) -> Result<()> {
        let gives = self.output();
        if !gives.feeds(layer.input()) {
            let i = self.layers.len();
            let before = match self.layers.last() {
                Some(l) => format!("layer {} ({})", i - 1, l.describe()),
                None => "the input".to_string(),
            };
            return Err(Error::LayersDoNotFit {
                layer: format!("layer {i} ({})", layer.describe()),
                takes: layer.input().to_string(),
                before,
                gives: gives.to_string(),
            });
        }
        let w = layer.out_dim();
        let (p, b) = super::qualified_names(layer.as_mut(), &format!("{}.", self.layers.len()));
        self.names.push(p);
        self.buffer_names.push(b);
        self.layers.push(layer);
        self.acts.push(Matrix::zeros(0, w));
        self.dacts.push(Matrix::zeros(0, w));
        Ok(())
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The layers, mutable (their parameters; not their number or order).
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// The output of the last forward (the logits for a classifier).
    ///
    /// # Shapes
    /// `(batch, out_dim)`.
    pub fn last_output(&self) -> &Matrix {
        self.acts
            .last()
            .expect("Sequential::last_output on an empty chain")
    }

    /// Every layer's output from the last forward, in order (`outputs()[i]` is layer
    /// i's; the last is `last_output()`).
    pub fn outputs(&self) -> &[Matrix] {
        &self.acts
    }

    /// Runs the chain and returns its output (also kept as `last_output()`).
    ///
    /// # Shapes
    /// `x: (batch, input().size())` -> `(batch, output().size())`.
    pub fn run(&mut self, x: &Matrix, pass: &mut Pass<'_>) -> &Matrix {
        self.forward_inner(x, pass);
        self.last_output()
    }

    fn forward_inner(&mut self, x: &Matrix, pass: &mut Pass<'_>) {
        for i in 0..self.layers.len() {
            let (before, rest) = self.acts.split_at_mut(i);
            let input = if i == 0 { x } else { &before[i - 1] };
            let out = &mut rest[0];
            out.set_rows(x.rows);
            self.layers[i].forward(input, out, pass);
        }
    }

    /// Backpropagates `dout` (gradient of the loss w.r.t. the output) through the chain.
    /// `x` is the input of the last forward. `dx`, if given, receives dL/dx; the first
    /// layer is told not to compute it otherwise (it is the costliest product).
    ///
    /// # Shapes
    /// `x: (batch, input().size())`, `dout: (batch, output().size())`, `dx` like `x`.
    pub fn backprop(&mut self, x: &Matrix, dout: &Matrix, dx: Option<&mut Matrix>, rt: &Runtime) {
        let n = self.layers.len();
        let mut dx = dx;
        for i in (0..n).rev() {
            let (acts_before, acts_rest) = self.acts.split_at(i);
            let input = if i == 0 { x } else { &acts_before[i - 1] };
            let output = &acts_rest[0];
            let (d_before, d_rest) = self.dacts.split_at_mut(i);
            let dy: &Matrix = if i == n - 1 { dout } else { &d_rest[0] };
            let dxi: Option<&mut Matrix> = if i == 0 {
                dx.take()
            } else {
                let d = &mut d_before[i - 1];
                d.set_rows(x.rows);
                Some(d)
            };
            self.layers[i].backward(input, output, dy, dxi, rt);
        }
    }

    /// Number of trainable scalars.
    pub fn param_count(&mut self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |p| n += p.value.len());
        n
    }
}

impl Layer for Sequential {
    fn describe(&self) -> String {
        self.layers
            .iter()
            .map(|l| l.describe())
            .collect::<Vec<_>>()
            .join(", ")
    }
    fn input(&self) -> Features {
        self.input
    }
    fn output(&self) -> Features {
        self.layers.last().map_or(self.input, |l| l.output())
    }

    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        if self.layers.is_empty() {
            y.data.copy_from_slice(&x.data);
            return;
        }
        self.forward_inner(x, pass);
        y.data.copy_from_slice(&self.last_output().data);
    }

    fn backward(
        &mut self,
        x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        if self.layers.is_empty() {
            if let Some(dx) = dx {
                dx.data.copy_from_slice(&dy.data);
            }
            return;
        }
        self.backprop(x, dy, dx, rt);
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        for (l, names) in self.layers.iter_mut().zip(&self.names) {
            super::visit_renamed(l.as_mut(), names, f);
        }
    }

    fn visit_buffers(&mut self, f: &mut dyn FnMut(&str, &mut [f32])) {
        for (l, names) in self.layers.iter_mut().zip(&self.buffer_names) {
            super::visit_buffers_renamed(l.as_mut(), names, f);
        }
    }
}
