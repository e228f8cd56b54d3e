//! # nnlab
//!
//! A neural-network lab written from scratch: the MNIST labs of lecture 10 of
//! "Deep Learning for Everyone", every technique the lecture names as a tested
//! feature, and a fast CPU trainer. Each layer's forward and backward pass are
//! written by hand, side by side, in [`layers`]; matrix products go through the
//! `gemm` crate ([`tensor`]), except where a layer's input is mostly zeros (MNIST
//! images, a trained ReLU net's activations): there the products skip the zeros
//! ([`tensor::sparse`]). How a computation uses the machine (threads, SIMD level, fast
//! paths, subnormals) is one [`Runtime`] value, passed explicitly.
//!
//! ```
//! use nnlab::data::Dataset;
//! use nnlab::train::{EpochStats, RunData, Trainer};
//! use nnlab::{Matrix, TrainConfig};
//!
//! // A toy two-class problem: is the first pixel brighter than the second?
//! let mut rng = nnlab::Rng::new(1);
//! let n = 400;
//! let pixels: Vec<f32> = (0..n * 4).map(|_| rng.uniform()).collect();
//! let labels: Vec<u8> = (0..n).map(|i| (pixels[i * 4] > pixels[i * 4 + 1]) as u8).collect();
//! let data = Dataset {
//!     name: "toy".into(),
//!     images: Matrix::from_vec(n, 4, pixels),
//!     labels,
//!     height: 2,
//!     width: 2,
//!     class_names: vec!["no".into(), "yes".into()],
//! };
//!
//! // The lecture's xavier lab, shrunk: one hidden layer of 16 ReLUs, Adam.
//! let mut cfg = TrainConfig::preset("xavier").unwrap();
//! cfg.model.hidden = vec![16];
//! cfg.epochs = 30;
//! cfg.batch = 20;
//! let mut trainer = Trainer::new(&cfg, 4, 2, nnlab::Runtime::default()).unwrap();
//! trainer
//!     .fit(&RunData { train: &data, val: None, test: None }, None, &mut |s: &EpochStats| {
//!         println!("Epoch: {:04} cost = {:.9}", s.epoch, s.cost)
//!     })
//!     .unwrap();
//! assert!(trainer.model.evaluate(&data, &trainer.rt).accuracy > 0.9);
//! ```
//!
//! Modules: [`data`] (IDX files, datasets, fetching, batches), [`layers`], [`loss`],
//! [`init`], [`optim`], [`model`], [`train`] (the loop and checkpoints), [`config`],
//! [`rbm`] (Deep Belief Net pre-training), [`ensemble`], [`io`] (safetensors model
//! files, image input), [`memory`] and [`footprint`] (sizes checked before
//! allocating), [`report`] (pictures), [`study`] (the lecture's claims as experiments),
//! [`bench`](mod@bench), [`gradcheck`], [`runtime`], [`par`] (fork-join and thread
//! budgets), [`simd`] (run-time AVX2 builds of nnlab's own kernels), [`fpmode`]
//! (subnormals flushed), [`timers`] (bench-only), [`files`] (atomic writes), [`alloc`]
//! (the cache-line aligned allocator the binary installs).

pub mod alloc;
pub mod bench;
pub mod config;
pub mod data;
pub mod ensemble;
pub mod error;
pub mod files;
pub mod footprint;
pub mod fpmode;
pub mod gradcheck;
pub mod init;
pub mod io;
pub mod layers;
pub mod loss;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod par;
pub mod rbm;
pub mod render;
pub mod report;
pub mod rng;
pub mod runtime;
pub mod simd;
pub mod study;
pub mod tensor;
pub mod timers;
pub mod train;

pub use config::{ModelConfig, TrainConfig};
pub use error::{Error, Result};
pub use model::Model;
pub use rng::Rng;
pub use runtime::Runtime;
pub use tensor::Matrix;
