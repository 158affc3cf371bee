//! The command lines of `lbd` and `lbctl` (clap derive), in the library so
//! that the binaries and the generator of their manual pages and shell
//! completions (`lb-docs`, [`docs`]) share one definition.

pub mod docs;
pub mod lbctl;
pub mod lbd;
