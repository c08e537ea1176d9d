//! Directives of the default (kubeadm) Corefile whose behaviour is not built yet.
//!
//! `clusterdns check` must accept the kubeadm Corefile and reject typos in it
//! with file:line, so every directive below has its arguments validated exactly
//! as CoreDNS's setup code would. Starting a server with one of them is a clear
//! startup error ("not implemented yet"), never a silent no-op. Each directive
//! moves to its own module when its behaviour lands (issue: "The default
//! Corefile, fully working").

use crate::corefile::{CorefileError, Dispenser, Token};

/// Names of the directives handled here.
const NAMES: &[&str] = &["cache", "loadbalance"];

/// A validated directive of a plugin that is not implemented yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The directive name.
    pub name: &'static str,
    /// Where it was written (`file:line:col`), for the startup error.
    pub at: String,
}

/// Whether `name` is validated here.
pub fn handles(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Validate the directive's arguments and block.
pub fn parse(d: &mut Dispenser<'_>) -> Result<Pending, CorefileError> {
    let dir = d.directive();
    let name = NAMES
        .iter()
        .copied()
        .find(|n| *n == dir.name.text)
        .ok_or_else(|| d.err("not a pending directive"))?;
    match name {
        "loop" => {
            d.expect_end()?;
            no_block(d, name)?;
        }
        "loadbalance" => {
            if let Some(policy) = d.next_arg() {
                one_of(policy, name, &["round_robin", "weighted"])?;
                if policy.text == "weighted" {
                    d.expect_arg("weight file")?;
                }
            }
            d.expect_end()?;
            block(d, name, |p, sd| match p {
                "reload" => {
                    sd.expect_arg("duration")?.parse_duration("reload")?;
                    sd.expect_end()
                }
                "prefer" => {
                    sd.expect_arg("CIDR")?;
                    let _ = sd.remaining();
                    Ok(())
                }
                _ => Err(unknown(sd, name, p)),
            })?;
        }
        "cache" => parse_cache(d)?,
        _ => {}
    }
    let p = &dir.name.pos;
    Ok(Pending {
        name,
        at: format!("{}:{}:{}", p.file.display(), p.line, p.col),
    })
}

fn parse_cache(d: &mut Dispenser<'_>) -> Result<(), CorefileError> {
    const N: &str = "cache";
    let args = d.remaining();
    if let Some(first) = args.first()
        && first.text.bytes().all(|b| b.is_ascii_digit())
    {
        first.parse_u32("cache TTL", 0..=u32::MAX)?;
    }
    block(d, N, |p, sd| {
        match p {
            "success" | "denial" => {
                sd.expect_arg("capacity")?
                    .parse_u32("capacity", 0..=u32::MAX)?;
                for t in sd.remaining() {
                    t.parse_u32("TTL", 0..=u32::MAX)?;
                }
            }
            "prefetch" => {
                sd.expect_arg("amount")?
                    .parse_u32("prefetch amount", 1..=u32::MAX)?;
                let _ = sd.remaining();
            }
            "serve_stale" => {
                if let Some(t) = sd.next_arg() {
                    t.parse_duration("serve_stale duration")?;
                }
                if let Some(t) = sd.next_arg() {
                    one_of(t, N, &["immediate", "verify"])?;
                }
                sd.expect_end()?;
            }
            "servfail" => {
                sd.expect_arg("duration")?.parse_duration("servfail")?;
                sd.expect_end()?;
            }
            "disable" => {
                let t = sd.expect_arg("success|denial")?;
                one_of(t, N, &["success", "denial"])?;
                let _ = sd.remaining();
            }
            "keepttl" => sd.expect_end()?,
            _ => return Err(unknown(sd, N, p)),
        }
        Ok(())
    })
}

fn one_of(t: &Token, plugin: &str, allowed: &[&str]) -> Result<(), CorefileError> {
    if allowed.contains(&t.text.as_str()) {
        Ok(())
    } else {
        Err(t.err(format!(
            "{plugin}: '{}' is not one of {}",
            t.text,
            allowed.join(", ")
        )))
    }
}

fn unknown(sd: &Dispenser<'_>, plugin: &str, property: &str) -> CorefileError {
    sd.err(format!("{plugin}: unknown property '{property}'"))
}

fn no_block(d: &Dispenser<'_>, plugin: &str) -> Result<(), CorefileError> {
    match d.block().first() {
        Some(sub) => Err(sub.name.err(format!("{plugin}: takes no block"))),
        None => Ok(()),
    }
}

fn block(
    d: &Dispenser<'_>,
    _plugin: &str,
    mut each: impl FnMut(&str, &mut Dispenser<'_>) -> Result<(), CorefileError>,
) -> Result<(), CorefileError> {
    for sub in d.block() {
        let mut sd = Dispenser::new(sub);
        each(sub.name.text.as_str(), &mut sd)?;
    }
    Ok(())
}
