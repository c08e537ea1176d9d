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
const NAMES: &[&str] = &["errors", "log", "forward", "loop", "reload"];

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
        "errors" => {
            d.expect_end()?;
            block(d, name, |p, sd| match p {
                "consolidate" => {
                    sd.expect_arg("duration")?
                        .parse_duration("consolidate duration")?;
                    sd.expect_arg("regexp")?;
                    let _ = sd.remaining();
                    Ok(())
                }
                "stacktrace" => sd.expect_end(),
                _ => Err(unknown(sd, name, p)),
            })?;
        }
        "log" => {
            let _ = d.remaining();
            block(d, name, |p, sd| match p {
                "class" => {
                    for c in sd.remaining() {
                        if !["all", "denial", "error", "success"].contains(&c.text.as_str()) {
                            return Err(c.err(format!("log: unknown class '{}'", c.text)));
                        }
                    }
                    Ok(())
                }
                _ => Err(unknown(sd, name, p)),
            })?;
        }
        "loop" => {
            d.expect_end()?;
            no_block(d, name)?;
        }
        "reload" => {
            if let Some(t) = d.next_arg() {
                t.parse_duration("reload interval")?;
            }
            if let Some(t) = d.next_arg() {
                t.parse_duration("reload jitter")?;
            }
            d.expect_end()?;
            no_block(d, name)?;
        }
        "forward" => parse_forward(d)?,
        _ => {}
    }
    let p = &dir.name.pos;
    Ok(Pending {
        name,
        at: format!("{}:{}:{}", p.file.display(), p.line, p.col),
    })
}

fn parse_forward(d: &mut Dispenser<'_>) -> Result<(), CorefileError> {
    const N: &str = "forward";
    d.expect_arg("FROM zone")?;
    let to = d.remaining();
    if to.is_empty() {
        return Err(d.err("forward: missing argument: TO upstream"));
    }
    if to.len() > 15 {
        return Err(to[15].err("forward: more than 15 upstreams"));
    }
    for t in to {
        let s = t.text.trim_start_matches("dns://");
        let is_file = s.starts_with('/') || s.starts_with('.');
        let is_tls = s.starts_with("tls://");
        if !(is_file || is_tls) && s.parse::<std::net::IpAddr>().is_err() {
            t.parse_socket_addr("forward upstream", 53)?;
        }
    }
    block(d, N, |p, sd| {
        match p {
            "force_tcp" | "prefer_udp" | "failfast_all_unhealthy_upstreams" => sd.expect_end()?,
            "expire" | "health_check" => {
                sd.expect_arg("duration")?.parse_duration(p)?;
                let _ = sd.remaining();
            }
            "max_fails" | "max_concurrent" | "max_connect_attempts" => {
                sd.expect_arg("number")?.parse_u32(p, 0..=u32::MAX)?;
                sd.expect_end()?;
            }
            "policy" => {
                let t = sd.expect_arg("policy")?;
                one_of(t, N, &["random", "round_robin", "sequential"])?;
                sd.expect_end()?;
            }
            "except" | "next" | "failover" => {
                sd.expect_arg("argument")?;
                let _ = sd.remaining();
            }
            "tls" | "tls_servername" => {
                let _ = sd.remaining();
            }
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
