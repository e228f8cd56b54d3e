//! Elementwise activations, each forward formula right above its derivative.
//! The derivative is written in terms of the input `x` or the output `y`, whichever
//! is cheaper; both are kept by the model.

use super::{Features, Layer, Param, Pass};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::simd::Level;
use crate::tensor::{Matrix, for_each_piece};
use std::fmt;

/// An elementwise nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Activation {
    /// `y = 1 / (1 + e^-x)`; saturates, so deep stacks of it vanish the gradient.
    Sigmoid,
    /// `y = tanh x`.
    Tanh,
    /// `y = max(0, x)` (Nair & Hinton 2010): the lecture's fix for vanishing gradients.
    Relu,
    /// `y = x` for x > 0, `slope · x` below (Maas et al. 2013).
    LeakyRelu(f32),
    /// `y = x` for x > 0, `alpha (e^x - 1)` below (Clevert et al. 2015).
    Elu(f32),
    /// `y = x`.
    Identity,
}

impl Activation {
    /// `y = f(x)` for one element.
    #[inline]
    pub fn f(self, x: f32) -> f32 {
        match self {
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    s * x
                }
            }
            Activation::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            Activation::Identity => x,
        }
    }

    /// `dy/dx` for one element, from its input `x` and output `y = f(x)`.
    #[inline]
    pub fn df(self, x: f32, y: f32) -> f32 {
        match self {
            Activation::Sigmoid => y * (1.0 - y), // σ' = σ(1 - σ)
            Activation::Tanh => 1.0 - y * y,      // tanh' = 1 - tanh²
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu(s) => {
                if x > 0.0 {
                    1.0
                } else {
                    s
                }
            }
            Activation::Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    y + a // d/dx a(e^x - 1) = a e^x = y + a
                }
            }
            Activation::Identity => 1.0,
        }
    }

    /// `y = f(x)` over a slice (vectorised at `level`, see [`crate::simd`]).
    ///
    /// # Shapes
    /// `x, y: (n,)`.
    pub fn forward_slice(self, level: Level, x: &[f32], y: &mut [f32]) {
        forward_kernel(level, self, x, y)
    }

    /// `dx = dy ⊙ f'(x)` over slices (vectorised like `forward_slice`).
    ///
    /// # Shapes
    /// `x, y, dy, dx: (n,)`.
    pub fn backward_slice(self, level: Level, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
        backward_kernel(level, self, x, y, dy, dx)
    }

    /// All names, for help and errors.
    pub const NAMES: &'static str =
        "sigmoid, tanh, relu, leaky-relu[:SLOPE] (0.01), elu[:ALPHA] (1.0), identity";
}

crate::simd::simd_fn! {
    fn forward_kernel(level: Level, act: Activation, x: &[f32], y: &mut [f32]) {
        match act {
            // Specialised loops so the common cases vectorise.
            Activation::Relu => y.iter_mut().zip(x).for_each(|(y, &x)| *y = x.max(0.0)),
            Activation::Identity => y.copy_from_slice(x),
            _ => y.iter_mut().zip(x).for_each(|(y, &x)| *y = act.f(x)),
        }
    }
}

crate::simd::simd_fn! {
    fn backward_kernel(level: Level, act: Activation, x: &[f32], y: &[f32], dy: &[f32], dx: &mut [f32]) {
        match act {
            Activation::Relu => {
                for ((d, &g), &x) in dx.iter_mut().zip(dy).zip(x) {
                    *d = if x > 0.0 { g } else { 0.0 };
                }
            }
            _ => {
                for (((d, &g), &x), &y) in dx.iter_mut().zip(dy).zip(x).zip(y) {
                    *d = g * act.df(x, y);
                }
            }
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Sigmoid => write!(f, "sigmoid"),
            Activation::Tanh => write!(f, "tanh"),
            Activation::Relu => write!(f, "relu"),
            Activation::LeakyRelu(s) => write!(f, "leaky-relu:{s}"),
            Activation::Elu(a) => write!(f, "elu:{a}"),
            Activation::Identity => write!(f, "identity"),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, arg) = match lower.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (lower.as_str(), None),
        };
        let num = |default: f32| -> Result<f32> {
            match arg {
                None => Ok(default),
                Some(a) => a
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        Error::config("activation", s, "a non-negative number after ':'")
                    }),
            }
        };
        Ok(match name {
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "leaky-relu" | "leaky_relu" | "leakyrelu" | "lrelu" => {
                Activation::LeakyRelu(num(0.01)?)
            }
            "elu" => Activation::Elu(num(1.0)?),
            "identity" | "linear" | "none" => Activation::Identity,
            _ => {
                return Err(Error::UnknownName {
                    kind: "activation",
                    name: s.to_string(),
                    options: format!("{}, maxout:K", Activation::NAMES),
                });
            }
        })
    }
}

impl TryFrom<String> for Activation {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Activation> for String {
    fn from(a: Activation) -> String {
        a.to_string()
    }
}

/// An activation as a layer of its own (no parameters), for examples of any shape.
#[derive(Clone, Debug)]
pub struct ActivationLayer {
    pub act: Activation,
    pub shape: Features,
}

impl ActivationLayer {
    pub fn new(act: Activation, shape: impl Into<Features>) -> Self {
        ActivationLayer {
            act,
            shape: shape.into(),
        }
    }
}

impl Layer for ActivationLayer {
    fn describe(&self) -> String {
        format!("{}", self.act)
    }
    fn input(&self) -> Features {
        self.shape
    }
    fn output(&self) -> Features {
        self.shape
    }

    /// # Shapes
    /// `x, y: (batch, size)`.
    fn forward(&mut self, x: &Matrix, y: &mut Matrix, pass: &mut Pass<'_>) {
        let (act, level) = (self.act, pass.rt.simd);
        for_each_piece(pass.rt, &mut y.data, &|at, y| {
            act.forward_slice(level, &x.data[at..at + y.len()], y)
        });
    }

    /// `dx = dy ⊙ f'(x)`.
    fn backward(
        &mut self,
        x: &Matrix,
        y: &Matrix,
        dy: &Matrix,
        dx: Option<&mut Matrix>,
        rt: &Runtime,
    ) {
        if let Some(dx) = dx {
            let (act, level) = (self.act, rt.simd);
            for_each_piece(rt, &mut dx.data, &|at, dx| {
                let r = at..at + dx.len();
                act.backward_slice(
                    level,
                    &x.data[r.clone()],
                    &y.data[r.clone()],
                    &dy.data[r],
                    dx,
                )
            });
        }
    }

    fn visit_params(&mut self, _f: &mut dyn FnMut(Param<'_>)) {}
}
