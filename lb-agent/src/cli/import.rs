//! `lb-agent import --haproxy FILE --keepalived FILE`: an lb-agent config from an
//! existing HAProxy + keepalived setup, checked by our own config check before it
//! is written (`lb_agent::import`).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use lb_agent::{
    config::ConfigErrors,
    import::{self, Diagnostic, ImportError, Imported, Input, Options},
};

#[derive(Args)]
pub struct ImportArgs {
    /// haproxy.cfg to convert (mode tcp frontends, backends, listens, the stats listener).
    #[arg(long, value_name = "FILE")]
    haproxy: Option<PathBuf>,
    /// keepalived.conf to convert (vrrp_instance, vrrp_script, virtual_server).
    #[arg(long, value_name = "FILE")]
    keepalived: Option<PathBuf>,
    /// Write the config to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print {ok, config, warnings, errors, config_errors, summary} as JSON.
    #[arg(long)]
    json: bool,
    /// [agent] interfaces (repeat for several); default: the vrrp_instances' interfaces.
    #[arg(long = "interface", value_name = "IF")]
    interfaces: Vec<String>,
    /// snat_address of NAT VIPs, this node's address (one per family); default: the
    /// keepalived unicast_src_ip of the VIP's family.
    #[arg(long = "snat-address", value_name = "ADDR")]
    snat_addresses: Vec<IpAddr>,
    /// The address of binds without one (`bind *:443`); default: the keepalived
    /// virtual address, when there is exactly one of the bind's family.
    #[arg(long = "vip", value_name = "ADDR")]
    vips: Vec<IpAddr>,
}

fn read(path: &Option<PathBuf>) -> Result<Option<Input>> {
    let Some(p) = path else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
    Ok(Some(Input {
        file: p.display().to_string(),
        text,
    }))
}

fn print_diagnostics(list: &[Diagnostic]) {
    for d in list {
        eprintln!("{d}");
    }
}

pub fn run(args: &ImportArgs) -> Result<()> {
    let haproxy = read(&args.haproxy)?;
    let keepalived = read(&args.keepalived)?;
    let opts = Options {
        interfaces: args.interfaces.clone(),
        snat_addresses: args.snat_addresses.clone(),
        vips: args.vips.clone(),
    };
    let imported = match import::convert(haproxy.as_ref(), keepalived.as_ref(), &opts) {
        Ok(i) => i,
        Err(ImportError::Inputs { errors, warnings }) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": false, "config": null, "output": null, "rejected": null,
                        "warnings": warnings, "errors": errors, "config_errors": [],
                    })
                );
            } else {
                print_diagnostics(&warnings);
                print_diagnostics(&errors);
            }
            bail!(
                "{} error(s) in the input (above, each with FILE:LINE or the flag to pass): no config written",
                errors.len()
            );
        }
        Err(e) => return Err(e.into()),
    };
    match imported.check(Path::new(
        args.output.as_deref().unwrap_or(Path::new("<generated>")),
    )) {
        Ok(_) => accepted(args, &imported),
        Err(errors) => rejected(args, &imported, errors),
    }
}

fn accepted(args: &ImportArgs, imported: &Imported) -> Result<()> {
    if let Some(out) = &args.output {
        std::fs::write(out, &imported.config)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true, "config": imported.config, "output": args.output, "rejected": null,
                "warnings": imported.warnings, "errors": [], "config_errors": [],
                "summary": imported.summary,
            })
        );
        return Ok(());
    }
    if args.output.is_none() {
        print!("{}", imported.config);
    }
    print_diagnostics(&imported.warnings);
    let target = args.output.as_ref().map_or_else(
        || "the config (stdout)".to_string(),
        |o| o.display().to_string(),
    );
    eprintln!(
        "lb-agent import: {}; {target} passes check-config",
        imported.summary
    );
    Ok(())
}

/// The generated text fails our config check: it goes to a side file (never to
/// --output) and every error is printed against it.
fn rejected(args: &ImportArgs, imported: &Imported, errors: ConfigErrors) -> Result<()> {
    let path = match &args.output {
        Some(o) => PathBuf::from(format!("{}.rejected", o.display())),
        None => std::env::temp_dir().join(format!("lb-agent-import-{}.toml", std::process::id())),
    };
    std::fs::write(&path, &imported.config)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The same errors, located in the file written.
    let errors = imported.check(&path).err().unwrap_or(errors);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "ok": false, "config": imported.config, "output": null, "rejected": path,
                "warnings": imported.warnings, "errors": [], "config_errors": errors.0,
                "summary": imported.summary,
            })
        );
    } else {
        print_diagnostics(&imported.warnings);
        eprintln!("{errors}");
    }
    bail!(
        "the generated config does not pass check-config ({} error(s) above: `lb-agent run` would refuse it); it was written to {} for inspection, not to {}: its comments cite the input line of each value. Fix the inputs (or pass --interface/--snat-address/--vip) and import again",
        errors.0.len(),
        path.display(),
        args.output
            .as_ref()
            .map_or_else(|| "stdout".to_string(), |o| o.display().to_string())
    )
}
