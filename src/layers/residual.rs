//! The lecture's "fast forward": a residual block (He et al. 2016, "Deep residual
//! learning for image recognition"), `y = x + f(x)`, or `y = P x + f(x)` with a
//! learned projection `P` (no bias) when `f` changes the width.

use super::{
    Dense, Features, Layer, Param, Pass, Sequential, qualified_names, visit_buffers_renamed,
    visit_renamed,
};
use crate::init::Init;
use crate::rng::Rng;
use crate::runtime::Runtime;
use crate::tensor::Matrix;

/// `y = shortcut(x) + f(x)`.
pub struct Residual {
    /// The residual branch f.
    pub f: Sequential,
    /// Projection used when widths differ (a bias-free `Dense`, weight stored `(in, out)`).
    pub proj: Option<Dense>,
    /// (batch, in): dL/dx through f
    dx_f: Matrix,
    names: Vec<String>,
    buffer_names: Vec<String>,
}

impl Residual {
    /// Wraps `f`; adds a projection (Xavier-uniform) if `f` changes the width.
    pub fn new(mut f: Sequential, rng: &mut Rng) -> Self {
        let (i, o) = (f.in_dim(), f.out_dim());
        let proj = (i != o).then(|| {
            let mut p = Dense::new(i, o, Init::XavierUniform, Init::Zeros, rng);
            p.b.clear();
            p.db.clear();
            p
        });
        let (mut names, buffer_names) = qualified_names(&mut f, "f.");
        if proj.is_some() {
            names.push("proj.weight".into());
        }
        Residual {
            f,
            proj,
            dx_f: Matrix::zeros(0, i),
            names,
            buffer_names,
        }
    }
}

impl Layer for Residual {
    fn describe(&self) -> String {
        let shortcut = if self.proj.is_some() {
            "projection"
        } else {
            "identity"
        };
        format!("residual[{}] + {shortcut}", self.f.describe())
    }
    fn input(&self) -> Features {
        self.f.input()
    }
    fn output(&self) -> Features {
        self.f.output()
    }

    /// `y = f(x) + x` or `y = f(x) + x P` (`P: (in, out)`, stored as `Dense` stores it).
    ///
    /// # Shapes
    /// `x: (batch, in)`, `y: (batch, out)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let fy = self.f.run(x, pass);
        y.data.copy_from_slice(&fy.data);
        match &self.proj {
            None => y.data.iter_mut().zip(&x.data).for_each(|(y, &x)| *y += x),
            Some(p) => crate::tensor::matmul_nn(pass.rt, x, &p.w, y, true),
        }
    }

    /// `dx = df/dxᵀ dy + dy` (identity) or `+ dy Pᵀ` (projection, with `dP = xᵀ dy`).
    fn backward(
        &mut self,
        x: &Matrix,
        _y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        self.dx_f.set_rows(x.rows);
        let want_dx = dx.is_some();
        self.f
            .backprop(x, dy, want_dx.then_some(&mut self.dx_f), rt);
        if let Some(p) = &mut self.proj {
            crate::tensor::matmul_tn(rt, x, dy, &mut p.dw, false);
        }
        if let Some(dx) = dx {
            match &self.proj {
                None => {
                    for ((d, &a), &g) in dx.data.iter_mut().zip(&self.dx_f.data).zip(&dy.data) {
                        *d = a + g;
                    }
                }
                Some(p) => {
                    dx.data.copy_from_slice(&self.dx_f.data);
                    crate::tensor::matmul_nt(rt, dy, &p.w, dx, true);
                }
            }
        }
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(Param<'_>)) {
        let n_f = self.names.len() - self.proj.is_some() as usize;
        visit_renamed(&mut self.f, &self.names[..n_f], f);
        if let Some(p) = &mut self.proj {
            let name = &self.names[n_f];
            p.visit_params(&mut |q| {
                if q.name == "weight" {
                    f(Param { name, ..q })
                }
            });
        }
    }

    fn visit_buffers(&mut self, f: &mut dyn FnMut(&str, &mut [f32])) {
        visit_buffers_renamed(&mut self.f, &self.buffer_names, f);
    }
}
