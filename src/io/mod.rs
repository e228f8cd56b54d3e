//! Files in and out: model files and checkpoints (safetensors), and the user's own
//! digit images.

pub mod image_input;
pub mod model_file;

pub use model_file::{LoadedModel, ModelMeta, load_model, save_model};
