//! `clusterdns`: the thin binary. Phases: tracing → config (no sockets) →
//! bind and spawn → wait for a signal → drain with a grace period.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clusterdns::cli::{Cli, Command, normalize};
use clusterdns::plugin::build::Families;
use clusterdns::{app, config, corefile, plugin};
use tokio_util::sync::CancellationToken;

/// Exit code for an invalid configuration (sysexits EX_USAGE), as linkerd does.
const EXIT_CONFIG: u8 = 64;
/// How long in-flight queries may take after a signal.
const GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize(std::env::args_os()));
    let s = &cli.server;
    if s.version {
        println!("clusterdns-{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if s.plugins {
        println!("Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:");
        for p in plugin::compiled_in() {
            println!("  dns.{p}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Migrate { file }) = &cli.command {
        let code = clusterdns::migrate::run(file, &mut io::stdout().lock(), &mut io::stderr());
        return ExitCode::from(code);
    }
    clusterdns::telemetry::init();
    // kube and hyper both pull rustls; pick the process-wide provider before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(Command::EndpointsController(args)) = &cli.command {
        return endpoints_controller(args);
    }
    if let Some(Command::Proxy(args)) = &cli.command {
        return proxy(args);
    }
    let cfg = match config::load(&s.conf, &corefile::real_env, s.dns_port) {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return ExitCode::from(if matches!(cli.command, Some(Command::Check)) {
                1
            } else {
                EXIT_CONFIG
            });
        }
    };
    if let Some(Command::Check) = cli.command {
        println!("{}: OK", s.conf.display());
        return ExitCode::SUCCESS;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        // Installed before anything starts and kept: no signal is lost.
        let signals = match clusterdns::shutdown::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("installing signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let root = CancellationToken::new();
        let families = Families::new(clusterdns::metrics::registry());
        let app = match app::App::start(&cfg, families, root.clone()).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("{}: {e:#}", s.conf.display());
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let _pid = s
            .pidfile
            .as_deref()
            .map(clusterdns::pidfile::PidFile::create);
        if !s.quiet {
            for a in app.dns_addrs() {
                println!("{a}");
            }
            println!("clusterdns-{}", env!("CARGO_PKG_VERSION"));
        }
        let source = app::ConfigSource {
            path: s.conf.clone(),
            default_port: s.dns_port,
        };
        app.run(source, GRACE, signals).await;
        ExitCode::SUCCESS
    })
}

/// The `endpoints-controller` role: no Corefile, its own flags.
fn endpoints_controller(args: &clusterdns::cli::EndpointsControllerArgs) -> ExitCode {
    run_role(
        "endpoints-controller",
        clusterdns::endpointslice::role::run(args),
    )
}

/// The `proxy` role: no Corefile, its own flags.
fn proxy(args: &clusterdns::cli::ProxyArgs) -> ExitCode {
    run_role("proxy", clusterdns::proxy::role::run(args))
}

/// Run a role to its end; an error is one line on stderr and exit 64.
fn run_role<E: std::fmt::Display>(
    name: &str,
    role: impl std::future::Future<Output = Result<(), E>>,
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The multi-threaded Tokio runtime every role runs on.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("starting the runtime: {e}");
            ExitCode::FAILURE
        })
}
