//! A chain of layers. It owns the buffers between them: `acts[i]` is layer i's output
//! and `dacts[i]` the gradient of the loss with respect to it. Buffers grow to the
//! largest batch seen and are then reused, so steady-state steps do not allocate.

use super::{Handoff, Layer, Mode, Param};
use crate::rng::Rng;
use crate::tensor::Matrix;

/// What `Sequential::infer_observed` calls for each layer it runs: `(layer index, its
/// input, run it)`.
pub type Observer<'o> = dyn FnMut(usize, &Matrix, &mut dyn FnMut()) + 'o;

/// Layers applied one after another; itself a `Layer`, so blocks can nest.
pub struct Sequential {
    pub layers: Vec<Box<dyn Layer>>,
    /// acts[i]: (batch, layers[i].out_dim())
    acts: Vec<Matrix>,
    /// dacts[i]: like acts[i]
    dacts: Vec<Matrix>,
    in_dim: usize,
    /// names[i]: qualified names (`i.weight`, ...) of layer i's parameters
    names: Vec<Vec<String>>,
    /// buffer_names[i]: the same for layer i's buffers
    buffer_names: Vec<Vec<String>>,
    /// The nonzero entries `infer` passes between layers (buffers kept for reuse).
    handoff: Handoff,
}

impl Sequential {
    /// A chain taking `in_dim` features; layers are added with `push`.
    pub fn new(in_dim: usize) -> Self {
        Sequential {
            layers: Vec::new(),
            acts: Vec::new(),
            dacts: Vec::new(),
            in_dim,
            names: Vec::new(),
            buffer_names: Vec::new(),
            handoff: Handoff::default(),
        }
    }

    /// Appends a layer; its `in_dim` must equal the current output width.
    ///
    /// # Panics
    /// On a width mismatch (a bug in the caller: specs are validated before building).
    pub fn push(&mut self, mut layer: Box<dyn Layer>) {
        assert_eq!(
            layer.in_dim(),
            self.out_dim(),
            "Sequential::push: {} after width {}",
            layer.describe(),
            self.out_dim()
        );
        let w = layer.out_dim();
        let (p, b) = super::qualified_names(layer.as_mut(), &format!("{}.", self.layers.len()));
        self.names.push(p);
        self.buffer_names.push(b);
        self.layers.push(layer);
        self.acts.push(Matrix::zeros(0, w));
        self.dacts.push(Matrix::zeros(0, w));
    }

    /// The output of the last forward (the logits for a classifier).
    ///
    /// # Shapes
    /// `(batch, out_dim)`.
    pub fn output(&self) -> &Matrix {
        self.acts
            .last()
            .expect("Sequential::output on an empty chain")
    }

    /// Every layer's output from the last forward, in order (`outputs()[i]` is layer
    /// i's; the last is `output()`).
    pub fn outputs(&self) -> &[Matrix] {
        &self.acts
    }

    /// Runs the chain and returns its output (also kept as `output()`).
    pub fn run(&mut self, x: &Matrix, mode: Mode, rng: &mut Rng) -> &Matrix {
        self.forward_inner(x, mode, rng);
        self.output()
    }

    /// `run` in evaluation mode for a forward with no backward after it: a layer that
    /// passes its input through unchanged (dropout) is skipped, and the next layer
    /// reads the input it would have copied; a ReLU is folded into the layer before it
    /// where that layer can (`Layer::infer`: a dense layer); and a dense layer reads
    /// its input's nonzero entries as the dense layer before it listed them
    /// (`Handoff`). The output has the same bits as `run`'s; the skipped layers'
    /// `outputs()` are left as they were, so no `backprop` may follow.
    pub fn infer<'a>(&'a mut self, x: &'a Matrix, rng: &mut Rng) -> &'a Matrix {
        self.infer_observed(x, rng, &mut |_, _, run| run())
    }

    /// `infer`, calling `observe(i, input, run)` for each layer it runs: `run()` runs
    /// layer `i` on `input` (with the ReLU after it folded in, where it can). Layers
    /// it is not called for were skipped or folded. For per-layer timing
    /// (`examples/inference.rs`).
    pub fn infer_observed<'a>(
        &'a mut self,
        x: &'a Matrix,
        rng: &mut Rng,
        observe: &mut Observer<'_>,
    ) -> &'a Matrix {
        let n = self.layers.len();
        let kept = |layers: &[Box<dyn Layer>], from: usize| {
            (from..n).find(|&j| !layers[j].passes_through(Mode::Eval))
        };
        // the buffer that holds the current value: None for `x`, Some(i) for acts[i]
        let mut at = None;
        let mut next = kept(&self.layers, 0);
        let io = &mut self.handoff;
        io.given = false;
        while let Some(i) = next {
            let (before, rest) = self.acts.split_at_mut(i);
            let input = at.map_or(x, |j: usize| &before[j]);
            let out = &mut rest[0];
            out.set_rows(x.rows);
            let after = kept(&self.layers, i + 1);
            let relu = after.filter(|&j| self.layers[j].is_relu());
            // the layer after the ReLU may read this one's output entries
            io.wanted = relu
                .and_then(|j| kept(&self.layers, j + 1))
                .is_some_and(|j| self.layers[j].takes_entries());
            let layer = &mut self.layers[i];
            let mut folded = false;
            observe(i, input, &mut || {
                folded = layer.infer(input, out, relu.is_some(), io, rng);
            });
            io.pass_on();
            at = Some(i);
            next = match relu {
                Some(j) if folded => kept(&self.layers, j + 1), // the ReLU is done
                _ => after,
            };
        }
        at.map_or(x, |j| &self.acts[j])
    }

    fn forward_inner(&mut self, x: &Matrix, mode: Mode, rng: &mut Rng) {
        for i in 0..self.layers.len() {
            let (before, rest) = self.acts.split_at_mut(i);
            let input = if i == 0 { x } else { &before[i - 1] };
            let out = &mut rest[0];
            out.set_rows(x.rows);
            self.layers[i].forward(input, out, mode, rng);
        }
    }

    /// Backpropagates `dout` (gradient of the loss w.r.t. the output) through the chain.
    /// `x` is the input of the last forward. `dx`, if given, receives dL/dx; the first
    /// layer is told not to compute it otherwise (it is the costliest product).
    pub fn backprop(&mut self, x: &Matrix, dout: &Matrix, dx: Option<&mut Matrix>) {
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
            self.layers[i].backward(input, output, dy, dxi);
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
    fn in_dim(&self) -> usize {
        self.in_dim
    }
    fn out_dim(&self) -> usize {
        self.layers.last().map_or(self.in_dim, |l| l.out_dim())
    }

    fn forward(&mut self, x: &Matrix, y: &mut Matrix, mode: Mode, rng: &mut Rng) {
        if self.layers.is_empty() {
            y.data.copy_from_slice(&x.data);
            return;
        }
        self.forward_inner(x, mode, rng);
        y.data.copy_from_slice(&self.output().data);
    }

    fn backward(&mut self, x: &Matrix, _y: &Matrix, dy: &Matrix, dx: Option<&mut Matrix>) {
        if self.layers.is_empty() {
            if let Some(dx) = dx {
                dx.data.copy_from_slice(&dy.data);
            }
            return;
        }
        self.backprop(x, dy, dx);
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
