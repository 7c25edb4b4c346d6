//! One file per subcommand.

pub mod check_config;
pub mod demo;
