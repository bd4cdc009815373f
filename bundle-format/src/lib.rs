//! The Capsa bundle format: one `.capsa` file holding a canonical-JSON manifest and
//! content-addressed tar+zstd layers with their tables of contents, optionally signed.
//!
//! The normative description is `SPEC.md` beside this crate. This crate reads bundles as
//! hostile input: every path goes through [`BundlePath`], every size is bounded, every digest is
//! checked before the bytes it covers are used. It contains no unsafe code.

#![forbid(unsafe_code)]

pub mod canonical;
pub mod container;
pub mod digest;
pub mod error;
pub mod extract;
pub mod layer;
pub mod limits;
pub mod manifest;
pub mod path;
pub mod permissions;
pub mod reader;
pub mod sign;
pub mod stub;
pub mod toc;
pub mod writer;
mod zwrite;

pub use digest::Digest;
pub use error::{Error, Result};
pub use extract::extract;
pub use layer::{Compression, LayerStats, LayerWriter};
pub use manifest::{BlobRef, Desktop, Layer, LayerRole, Manifest, Requires};
pub use path::BundlePath;
pub use permissions::{Enforcement, Key, Permission, Permissions};
pub use reader::{Bundle, SignatureState};
pub use sign::{PublicKey, SecretKey};
pub use stub::{StubError, StubNote, StubState};
pub use toc::{EntryKind, Toc, TocEntry};
pub use writer::{write_bundle, BlobData};
