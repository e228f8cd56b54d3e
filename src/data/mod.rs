//! Data: the IDX format, the datasets, getting their files, and minibatches.

pub mod augment;
pub mod batches;
pub mod datasets;
pub mod deb;
pub mod fetch;
pub mod idx;

pub use batches::Batcher;
pub use datasets::{Dataset, DatasetRef, LAB_VALIDATION, Splits};
pub use fetch::FetchOptions;
