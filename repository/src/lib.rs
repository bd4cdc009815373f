//! Capsa's signed static repository: a directory of plain files that any web server, CDN or
//! object store serves, with no server code. Publishers write it (`publish`), clients read it
//! (`client`) over HTTP(S) or `file://` (`fetch`), trusting only the key the user gave.
//! No unsafe code.

#![forbid(unsafe_code)]

pub mod catalog;
pub mod client;
pub mod error;
pub mod fetch;
pub mod layout;
pub mod meta;
pub mod publish;
