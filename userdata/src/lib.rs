//! What Capsa keeps per user, and the rules it applies to it; shared by the launcher and the
//! store, below both:
//! - [`dirs`]: the XDG base directories;
//! - [`cache`]: layers unpacked once by digest and sealed; every use checks the seal;
//! - [`identity`]: an app is its id plus its publisher;
//! - [`state`]: per-identity state directories and their locks;
//! - [`fsx`]: fd-relative tree walks and removal that never follow a symlink;
//! - [`tidy`]: removing the mount points a run left in an app's state;
//! - [`consent`]: what the user agreed an app may use;
//! - [`policy`]: the one merge of manifest, consent, overrides and per-run grants.
//!
//! No unsafe code.

#![forbid(unsafe_code)]

pub mod cache;
pub mod consent;
pub mod dirs;
pub mod error;
pub mod fsx;
pub mod identity;
pub mod policy;
pub mod state;
pub mod tidy;

pub use error::DataError;
pub use identity::{Identity, Publisher};
pub use policy::{merge, Changes, Grants};
