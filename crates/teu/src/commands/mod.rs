//! One file per command. Each parses its arguments, calls the libraries, and prints what
//! they return (human text on stderr, the digest or `--json` on stdout).

pub mod build;
pub mod cache;
pub mod convert;
pub mod diff;
pub mod inspect;
pub mod load;
pub mod lock;
pub mod login;
pub mod serve;
pub mod tags;
pub mod transfer;
