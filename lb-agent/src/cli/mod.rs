//! One file per subcommand (or family of them).

pub mod admin;
pub mod check_config;
#[cfg(feature = "lab")]
pub mod demo;
pub mod flows;
pub mod generate;
pub mod hold;
pub mod import;
pub mod inspect;
pub mod run;
mod table;
pub mod target;
