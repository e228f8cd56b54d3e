//! Learning-rate schedules, evaluated once per epoch.

use crate::error::{Error, Result};
use std::fmt;

/// How the learning rate changes over epochs.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs (`step:EVERY:GAMMA`).
    Step { every: usize, gamma: f32 },
    /// Cosine annealing from the base rate to `min_lr` over the run
    /// (Loshchilov & Hutter 2017, without restarts) (`cosine[:MIN]`).
    Cosine { min_lr: f32 },
}

impl Schedule {
    /// The rate for `epoch` (0-based) of `epochs`.
    pub fn lr(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            Schedule::Cosine { min_lr } => {
                let frac = if epochs <= 1 {
                    0.0
                } else {
                    epoch as f32 / (epochs - 1) as f32
                };
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f32::consts::PI * frac).cos())
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            Schedule::Cosine { min_lr } => write!(f, "cosine:{min_lr}"),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let bad = || {
            Error::config(
                "schedule",
                s,
                "constant, step:EVERY:GAMMA (e.g. step:5:0.5) or cosine[:MIN_LR]",
            )
        };
        match parts.as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["step", every, gamma] => {
                let every: usize = every.parse().map_err(|_| bad())?;
                let gamma: f32 = gamma.parse().map_err(|_| bad())?;
                if every == 0 || !(gamma > 0.0 && gamma.is_finite()) {
                    return Err(bad());
                }
                Ok(Schedule::Step { every, gamma })
            }
            ["cosine"] => Ok(Schedule::Cosine { min_lr: 0.0 }),
            ["cosine", min] => {
                let min_lr: f32 = min.parse().map_err(|_| bad())?;
                if !(min_lr >= 0.0 && min_lr.is_finite()) {
                    return Err(bad());
                }
                Ok(Schedule::Cosine { min_lr })
            }
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for Schedule {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Constant.lr(0.1, 7, 10), 0.1);
        let s: Schedule = "step:5:0.5".parse().unwrap();
        assert_eq!(s.lr(1.0, 4, 15), 1.0);
        assert_eq!(s.lr(1.0, 5, 15), 0.5);
        assert_eq!(s.lr(1.0, 14, 15), 0.25);
        let c: Schedule = "cosine:0.1".parse().unwrap();
        assert!((c.lr(1.0, 0, 11) - 1.0).abs() < 1e-6);
        assert!((c.lr(1.0, 5, 11) - 0.55).abs() < 1e-6);
        assert!((c.lr(1.0, 10, 11) - 0.1).abs() < 1e-6);
        assert!("step:0:0.5".parse::<Schedule>().is_err());
        assert!("linear".parse::<Schedule>().is_err());
    }
}
