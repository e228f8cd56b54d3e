//! # nnlab
//!
//! A neural-network lab written from scratch: the MNIST labs of lecture 10 of
//! "Deep Learning for Everyone", every technique the lecture names as a tested
//! feature, and a fast CPU trainer. Each layer's forward and backward pass are
//! written by hand, side by side, in `layers/`.

pub mod data;
pub mod error;
pub mod rng;
pub mod tensor;

pub use error::{Error, Result};
pub use rng::Rng;
pub use tensor::Matrix;
pub mod bench;
pub mod config;
pub mod ensemble;
pub mod gradcheck;
pub mod init;
pub mod io;
pub mod layers;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod rbm;
pub mod study;
pub mod train;

pub use config::{ModelConfig, TrainConfig};
pub use model::Model;
pub mod render;
pub mod report;
