//! Flatten: an image `(c, h, w)` (or a sequence) read as one vector of its elements
//! in the same order, as PyTorch's `nn.Flatten` does. The layout does not change, so
//! both passes are copies.

use super::{Features, Layer, Param, Pass};
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// Gives its input's elements as a vector.
#[derive(Clone, Debug)]
pub struct Flatten {
    pub shape: Features,
}

impl Flatten {
    /// Flattens examples of `shape`.
    pub fn new(shape: Features) -> Self {
        Flatten { shape }
    }
}

impl Layer for Flatten {
    fn describe(&self) -> String {
        format!("flatten -> {}", self.shape.size())
    }
    fn input(&self) -> Features {
        self.shape
    }
    fn output(&self) -> Features {
        Features::Vector(self.shape.size())
    }
    /// # Shapes
    /// `x, y: (batch, size)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, _pass: &mut Pass<'_>) {
        y.data.copy_from_slice(&x.data);
    }
    /// # Shapes
    /// `dy, dx: (batch, size)`.
    fn backward(
        &mut self,
        _x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        _rt: &Runtime,
    ) {
        if let Some(dx) = dx {
            dx.data.copy_from_slice(&dy.data);
        }
    }
    fn visit_params(&mut self, _f: &mut dyn FnMut(Param<'_>)) {}
}
