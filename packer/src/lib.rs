//! Capsa's packer: reads a recipe, captures the app with the ELF closure of its binaries (the
//! dynamic loader's real search order, resolved in pure Rust without running anything), splits
//! what it captured into `libc`, `deps` and `app` layers, and writes a reproducible bundle.
//! No unsafe code.

#![forbid(unsafe_code)]

pub mod base;
pub mod capture;
pub mod closure;
pub mod dpkg;
pub mod elf;
pub mod error;
pub mod layers;
pub mod ldcache;
pub mod origin;
pub mod pack;
pub mod propose;
pub mod provided;
pub mod recipe;
pub mod resolve;
pub mod scout;
pub mod shebang;
pub mod starter;
pub mod traced;
pub mod units;

pub use error::PackError;
pub use pack::{pack, NoProgress, PackOptions, Packed, Progress, Report};
pub use recipe::Recipe;
pub use traced::TraceHelper;
