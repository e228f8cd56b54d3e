//! Weight and bias initialisers, chosen per layer. Each fills a buffer from the one
//! seeded `Rng`, given the layer's fan-in and fan-out.
//!
//! Names (as written in configs and flags): `zeros`, `constant:C`, `normal:STD`,
//! `uniform:LIMIT`, `xavier-uniform`, `xavier-normal`, `he-normal`, `he-uniform`,
//! `lecun-normal`. RBM pre-training is not an initialiser of one buffer; see `rbm`.

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::fmt;

/// How to fill a parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Init {
    /// All zeros. For weights this makes every unit of a layer identical, so they stay
    /// identical: the lecture's "all-zero init kills the signal".
    Zeros,
    /// Every element `c`.
    Constant(f32),
    /// N(0, std²). The lecture's lab 10-1 uses std 1 (`tf.random_normal`).
    Normal(f32),
    /// U(-limit, limit).
    Uniform(f32),
    /// Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward
    /// neural networks": U(-l, l), l = sqrt(6 / (fan_in + fan_out)). TensorFlow's
    /// `xavier_initializer()`, used by labs 10-2 to 10-4.
    XavierUniform,
    /// Glorot & Bengio 2010: N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// He et al. 2015, "Delving deep into rectifiers": N(0, 2 / fan_in), the lecture's
    /// `randn(fan_in, fan_out) / sqrt(fan_in / 2)`.
    HeNormal,
    /// He et al. 2015, uniform form: U(-l, l), l = sqrt(6 / fan_in).
    HeUniform,
    /// LeCun et al. 1998, "Efficient BackProp": N(0, 1 / fan_in), the lecture's simple
    /// Xavier form `randn(fan_in, fan_out) / sqrt(fan_in)`.
    LeCunNormal,
    /// U(-l, l), l = 1 / sqrt(fan_in): PyTorch's default for `Linear` and `Conv2d`
    /// weights (`kaiming_uniform_` with a = √5) and biases.
    FanInUniform,
}

impl Init {
    /// Fills `w` for a layer with the given fans.
    pub fn fill(&self, w: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut Rng) {
        let (fi, fo) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        match *self {
            Init::Zeros => w.fill(0.0),
            Init::Constant(c) => w.fill(c),
            Init::Normal(std) => w.iter_mut().for_each(|x| *x = std * rng.normal()),
            Init::Uniform(l) => w.iter_mut().for_each(|x| *x = rng.uniform_range(-l, l)),
            Init::XavierUniform => Init::Uniform((6.0 / (fi + fo)).sqrt()).fill(w, 0, 0, rng),
            Init::XavierNormal => Init::Normal((2.0 / (fi + fo)).sqrt()).fill(w, 0, 0, rng),
            Init::HeNormal => Init::Normal((2.0 / fi).sqrt()).fill(w, 0, 0, rng),
            Init::HeUniform => Init::Uniform((6.0 / fi).sqrt()).fill(w, 0, 0, rng),
            Init::LeCunNormal => Init::Normal((1.0 / fi).sqrt()).fill(w, 0, 0, rng),
            Init::FanInUniform => Init::Uniform(1.0 / fi.sqrt()).fill(w, 0, 0, rng),
        }
    }

    /// The mean and variance the filled values should have (for tests and docs).
    pub fn moments(&self, fan_in: usize, fan_out: usize) -> (f32, f32) {
        let (fi, fo) = (fan_in.max(1) as f32, fan_out.max(1) as f32);
        match *self {
            Init::Zeros => (0.0, 0.0),
            Init::Constant(c) => (c, 0.0),
            Init::Normal(s) => (0.0, s * s),
            Init::Uniform(l) => (0.0, l * l / 3.0),
            Init::XavierUniform | Init::XavierNormal => (0.0, 2.0 / (fi + fo)),
            Init::HeNormal | Init::HeUniform => (0.0, 2.0 / fi),
            Init::LeCunNormal => (0.0, 1.0 / fi),
            Init::FanInUniform => (0.0, 1.0 / (3.0 * fi)),
        }
    }

    /// All names, for help and errors.
    pub const NAMES: &'static str = "zeros, constant:C, normal:STD, uniform:LIMIT, xavier-uniform, \
         xavier-normal, he-normal, he-uniform, lecun-normal, fan-in-uniform (and, for --init, rbm)";
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Zeros => write!(f, "zeros"),
            Init::Constant(c) => write!(f, "constant:{c}"),
            Init::Normal(s) => write!(f, "normal:{s}"),
            Init::Uniform(l) => write!(f, "uniform:{l}"),
            Init::XavierUniform => write!(f, "xavier-uniform"),
            Init::XavierNormal => write!(f, "xavier-normal"),
            Init::HeNormal => write!(f, "he-normal"),
            Init::HeUniform => write!(f, "he-uniform"),
            Init::LeCunNormal => write!(f, "lecun-normal"),
            Init::FanInUniform => write!(f, "fan-in-uniform"),
        }
    }
}

impl std::str::FromStr for Init {
    type Err = Error;
    fn from_str(s: &str) -> Result<Init> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, arg) = match lower.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (lower.as_str(), None),
        };
        let num = |default: Option<f32>| -> Result<f32> {
            match arg {
                Some(a) => a
                    .parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| Error::config("init", s, "a finite number after ':'")),
                None => default.ok_or_else(|| {
                    Error::config("init", s, format!("{name} needs a value, e.g. {name}:0.1"))
                }),
            }
        };
        let init = match name {
            "zeros" | "zero" => Init::Zeros,
            "constant" | "const" => Init::Constant(num(None)?),
            "normal" | "randn" => Init::Normal(num(Some(1.0))?),
            "uniform" => Init::Uniform(num(None)?),
            "xavier-uniform" | "xavier" | "glorot-uniform" | "glorot" => Init::XavierUniform,
            "xavier-normal" | "glorot-normal" => Init::XavierNormal,
            "he-normal" | "he" | "kaiming-normal" => Init::HeNormal,
            "he-uniform" | "kaiming-uniform" => Init::HeUniform,
            "lecun-normal" | "lecun" => Init::LeCunNormal,
            "fan-in-uniform" | "torch-default" => Init::FanInUniform,
            _ => {
                return Err(Error::UnknownName {
                    kind: "initialiser",
                    name: s.to_string(),
                    options: Init::NAMES.into(),
                });
            }
        };
        if let Init::Normal(v) | Init::Uniform(v) = init
            && v < 0.0
        {
            return Err(Error::config("init", s, "a non-negative std or limit"));
        }
        Ok(init)
    }
}

impl TryFrom<String> for Init {
    type Error = Error;
    fn try_from(s: String) -> Result<Init> {
        s.parse()
    }
}

impl From<Init> for String {
    fn from(i: Init) -> String {
        i.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_moments_match_formulas() {
        let mut rng = Rng::new(11);
        let (fi, fo) = (300, 200);
        let all = [
            Init::Zeros,
            Init::Constant(0.1),
            Init::Normal(1.0),
            Init::Normal(0.01),
            Init::Uniform(0.05),
            Init::XavierUniform,
            Init::XavierNormal,
            Init::HeNormal,
            Init::HeUniform,
            Init::LeCunNormal,
            Init::FanInUniform,
        ];
        for init in all {
            let mut w = vec![0f32; fi * fo];
            init.fill(&mut w, fi, fo, &mut rng);
            let n = w.len() as f64;
            let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            let (m, v) = init.moments(fi, fo);
            let sd = (v as f64).sqrt();
            assert!(
                (mean - m as f64).abs() <= 4.0 * sd / n.sqrt() + 1e-7,
                "{init}: mean {mean}"
            );
            assert!(
                (var - v as f64).abs() <= 0.02 * v as f64 + 1e-12,
                "{init}: var {var} vs {v}"
            );
            // uniform ones stay within their limit
            let limit = match init {
                Init::Uniform(l) => Some(l),
                Init::XavierUniform => Some((6.0 / (fi + fo) as f32).sqrt()),
                Init::HeUniform => Some((6.0 / fi as f32).sqrt()),
                Init::FanInUniform => Some(1.0 / (fi as f32).sqrt()),
                _ => None,
            };
            if let Some(l) = limit {
                assert!(w.iter().all(|x| x.abs() <= l), "{init} exceeds {l}");
                assert!(
                    w.iter().any(|x| x.abs() > 0.95 * l),
                    "{init} never nears {l}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_errors() {
        for s in [
            "zeros",
            "constant:0.5",
            "normal:1",
            "uniform:0.1",
            "xavier-uniform",
            "he-normal",
            "lecun-normal",
        ] {
            let i: Init = s.parse().unwrap();
            assert_eq!(i.to_string().parse::<Init>().unwrap(), i);
        }
        assert_eq!("normal".parse::<Init>().unwrap(), Init::Normal(1.0));
        assert!(
            "gaussian"
                .parse::<Init>()
                .unwrap_err()
                .to_string()
                .contains("xavier-uniform")
        );
        assert!("normal:abc".parse::<Init>().is_err());
        assert!("uniform".parse::<Init>().is_err());
        assert!("normal:-1".parse::<Init>().is_err());
    }
}
