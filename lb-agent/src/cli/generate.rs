//! `lb-agent generate-files --out DIR` (hidden): the man pages and shell completions,
//! generated from the very clap definition the binary parses its arguments with, so
//! they cannot drift from it. `cargo xtask dist` runs it on the binary it packages
//! (a release build: without the lab's `demo`).
//!
//! Writes `DIR/man/lb-agent.8` and one `lb-agent-<command>.8` per visible command,
//! and `DIR/completions/{lb-agent.bash,_lb-agent,lb-agent.fish}`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use clap::{Args, Command};
use clap_complete::Shell;

#[derive(Args)]
pub struct GenerateArgs {
    /// Directory to write `man/` and `completions/` into (created if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Man pages go in section 8: system administration commands (a daemon in /usr/sbin).
const SECTION: &str = "8";

/// Writes the man pages and completions of `cli` (the binary's whole command line).
pub fn run(args: &GenerateArgs, cli: Command) -> Result<()> {
    let mut cli = visible(&cli);
    // Every subcommand's usage and version resolved, as `--help` shows them.
    cli.build();
    let man = args.out.join("man");
    let completions = args.out.join("completions");
    for dir in [&man, &completions] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let name = cli.get_name().to_string();
    let version = cli.get_version().unwrap_or_default().to_string();
    write_page(&man, &name, cli.clone())?;
    for sub in cli.get_subcommands() {
        let page = format!("{name}-{}", sub.get_name());
        write_page(&man, &page, sub.clone().version(version.clone()))?;
    }
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let path = completions.join(file);
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cli, &name, &mut out);
        fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("wrote {} and {}", man.display(), completions.display());
    Ok(())
}

/// The command line as its users see it: without the hidden commands (started by
/// the agent itself, or this one), which clap_complete would otherwise offer, and
/// without clap's `help` command, which would be listed as a man page of its own.
fn visible(cli: &Command) -> Command {
    let shown = Command::new(cli.get_name().to_string())
        .subcommand_required(cli.is_subcommand_required_set())
        .disable_help_subcommand(true)
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let shown = match cli.get_version() {
        Some(v) => shown.version(v.to_string()),
        None => shown,
    };
    match cli.get_about() {
        Some(about) => shown.about(about.clone()),
        None => shown,
    }
}

fn write_page(dir: &Path, name: &str, cmd: Command) -> Result<()> {
    let path = dir.join(format!("{name}.{SECTION}"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .section(SECTION)
        .manual("lb-agent manual")
        .render(&mut out)
        .with_context(|| format!("cannot render the man page {name}"))?;
    fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}
