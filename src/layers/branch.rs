//! The lecture's "split & merge": several sub-networks read the same input and their
//! outputs are merged, by sum (all the same width) or by concatenation.

use super::{
    Features, Layer, Param, Pass, Sequential, qualified_names, visit_buffers_renamed, visit_renamed,
};
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// How branch outputs are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Merge {
    Sum,
    Concat,
}

/// Parallel branches over one input.
pub struct Branch {
    pub branches: Vec<Sequential>,
    pub merge: Merge,
    /// (batch, in): scratch for one branch's dL/dx
    dx_b: Matrix,
    /// (batch, out_b): scratch for one branch's slice of dy (concat)
    dy_b: Matrix,
    names: Vec<Vec<String>>,
    buffer_names: Vec<Vec<String>>,
}

impl Branch {
    /// Branches must share their input width, and for `Sum` their output width.
    ///
    /// # Panics
    /// On mismatched widths (specs are validated before building).
    pub fn new(mut branches: Vec<Sequential>, merge: Merge) -> Self {
        assert!(!branches.is_empty(), "Branch::new: no branches");
        let i = branches[0].in_dim();
        assert!(
            branches.iter().all(|b| b.in_dim() == i),
            "Branch::new: input widths differ"
        );
        if merge == Merge::Sum {
            let o = branches[0].out_dim();
            assert!(
                branches.iter().all(|b| b.out_dim() == o),
                "Branch::new: sum needs equal output widths"
            );
        }
        let (names, buffer_names) = branches
            .iter_mut()
            .enumerate()
            .map(|(k, b)| qualified_names(b, &format!("branches.{k}.")))
            .unzip();
        Branch {
            branches,
            merge,
            dx_b: Matrix::zeros(0, i),
            dy_b: Matrix::zeros(0, 0),
            names,
            buffer_names,
        }
    }
}

impl Layer for Branch {
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .branches
            .iter()
            .map(|b| format!("[{}]", b.describe()))
            .collect();
        format!("branch {:?} of {}", self.merge, parts.join(" | "))
    }
    fn input(&self) -> Features {
        self.branches[0].input()
    }
    fn output(&self) -> Features {
        match self.merge {
            Merge::Sum => self.branches[0].output(),
            Merge::Concat => Features::Vector(self.branches.iter().map(|b| b.out_dim()).sum()),
        }
    }

    /// Sum: `y = Σ_k f_k(x)`. Concat: `y = [f_1(x) | f_2(x) | ...]` by columns.
    ///
    /// # Shapes
    /// `x: (batch, in)`, `y: (batch, out)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let out = y.cols;
        let mut col = 0;
        for (k, b) in self.branches.iter_mut().enumerate() {
            let o = b.run(x, pass);
            match self.merge {
                Merge::Sum if k == 0 => y.data.copy_from_slice(&o.data),
                Merge::Sum => y.data.iter_mut().zip(&o.data).for_each(|(y, &v)| *y += v),
                Merge::Concat => {
                    for r in 0..x.rows {
                        y.data[r * out + col..r * out + col + o.cols].copy_from_slice(o.row(r));
                    }
                }
            }
            col += o.cols;
        }
    }

    /// Each branch gets `dy` (sum) or its columns of `dy` (concat); `dx` is the sum
    /// of the branches' input gradients.
    fn backward(
        &mut self,
        x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        mut dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        let out = dy.cols;
        let mut col = 0;
        for (k, b) in self.branches.iter_mut().enumerate() {
            let ob = b.out_dim();
            let dyb: &Matrix = match self.merge {
                Merge::Sum => dy,
                Merge::Concat => {
                    self.dy_b.reshape_for(dy.rows, ob);
                    for r in 0..dy.rows {
                        self.dy_b
                            .row_mut(r)
                            .copy_from_slice(&dy.data[r * out + col..r * out + col + ob]);
                    }
                    &self.dy_b
                }
            };
            col += ob;
            match dx.as_deref_mut() {
                None => b.backprop(x, dyb, None, rt),
                Some(dx) if k == 0 => b.backprop(x, dyb, Some(dx), rt),
                Some(dx) => {
                    self.dx_b.set_rows(x.rows);
                    b.backprop(x, dyb, Some(&mut self.dx_b), rt);
                    dx.data
                        .iter_mut()
                        .zip(&self.dx_b.data)
                        .for_each(|(d, &v)| *d += v);
                }
            }
        }
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        for (b, names) in self.branches.iter_mut().zip(&self.names) {
            visit_renamed(b, names, f);
        }
    }

    fn visit_buffers(&mut self, f: &mut dyn FnMut(&str, &mut [f32])) {
        for (b, names) in self.branches.iter_mut().zip(&self.buffer_names) {
            visit_buffers_renamed(b, names, f);
        }
    }
}
