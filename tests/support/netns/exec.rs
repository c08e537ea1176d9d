//! Running programs inside a namespace (`ip netns exec`), in the foreground or
//! as [`Spawned`] background processes killed on drop, and re-executing the
//! current test binary there to run one ignored test ([`run_inside`]).

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// `ip netns exec <ns> <program>`: a Command to add arguments and environment to.
pub fn command(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Run `program args` in namespace `ns` to completion (stdin empty).
pub fn exec(ns: &str, program: &str, args: &[&str]) -> Output {
    command(ns, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run `ip netns exec {ns} {program}`: {e}"))
}

/// Run `program args` in `ns` with `input` on its stdin (e.g. `nft -f -`).
pub fn exec_stdin(ns: &str, program: &str, args: &[&str], input: &str) -> Output {
    let mut child = command(ns, program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run `ip netns exec {ns} {program}`: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    // A writer thread, so a program that answers before reading everything cannot deadlock us.
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait for the command");
    let _ = writer.join();
    out
}

/// Like [`exec`], but the command must succeed; its stdout.
pub fn exec_ok(ns: &str, program: &str, args: &[&str]) -> String {
    let out = exec(ns, program, args);
    assert!(
        out.status.success(),
        "`ip netns exec {ns} {program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Apply an nft script (`nft -f -`) in `ns`; panics with nft's message on error.
pub fn nft_apply(ns: &str, script: &str) {
    let out = exec_stdin(ns, "nft", &["-f", "-"], script);
    assert!(
        out.status.success(),
        "nft -f - in {ns} failed ({}): {}\n--- script ---\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A background process, killed (and reaped) on drop. Its stdout and stderr go
/// to a log file, shown when the test panics.
pub struct Spawned {
    child: Child,
    label: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// Spawn `cmd` with stdout/stderr to a log and stdin a pipe held open for
    /// the process's life, so a helper that watches stdin exits if we die.
    pub fn start(mut cmd: Command, label: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir for a process log");
        let log = dir.path().join("log");
        let file = std::fs::File::create(&log).expect("create a process log");
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {label}: {e}"));
        Self {
            child,
            label: label.to_string(),
            log,
            _dir: dir,
        }
    }

    /// What the process wrote so far (stdout and stderr interleaved).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id (of `ip netns exec`, which execs the program: same process).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited; its status if so.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kill it now and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- log of {} ---\n{}", self.label, self.log());
        }
    }
}

/// Spawn `program args` in namespace `ns` in the background; killed on drop.
pub fn spawn_in(ns: &str, program: impl AsRef<OsStr>, args: &[&str]) -> Spawned {
    let label = format!("{} in {ns}", program.as_ref().to_string_lossy());
    let mut cmd = command(ns, program);
    cmd.args(args);
    Spawned::start(cmd, &label)
}

/// The current test binary re-executed in `ns` to run exactly the (ignored)
/// test `test` with extra environment `env`.
fn reexec(ns: &str, test: &str, env: &[(String, String)]) -> Command {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = command(ns, exe);
    cmd.args([test, "--exact", "--include-ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// How an inner test run by [`run_inside`] ended.
#[derive(Debug)]
pub struct Inside {
    /// The test binary's exit status (None: killed at the time limit).
    pub status: Option<ExitStatus>,
    /// Its stdout and stderr, interleaved.
    pub output: String,
}

impl Inside {
    /// Whether the inner test ran (exactly one) and passed.
    pub fn passed(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && self.output.contains("1 passed;")
    }

    /// Panic, showing the inner output, unless it ran and passed.
    pub fn assert_passed(&self, what: &str) {
        if self.passed() {
            eprintln!("--- {what} (passed) ---\n{}", self.output);
        }
        assert!(
            self.passed(),
            "{what} did not pass (status {:?}; an exit 0 without \"1 passed\" means the test \
             name matched nothing)\n--- inner output ---\n{}",
            self.status,
            self.output
        );
    }
}

/// Re-execute this test binary inside namespace `ns` to run the ignored test
/// `test` (its full path, e.g. `proxy_inside`), with `env` added to the
/// environment; waits at most `limit` (then kills it). The inner process and
/// everything it spawns live in `ns`, so an in-process server it starts on
/// 127.0.0.1 is reachable by its children and by nothing else.
pub fn run_inside(ns: &str, test: &str, env: &[(String, String)], limit: Duration) -> Inside {
    let mut spawned = Spawned::start(reexec(ns, test, env), &format!("{test} inside {ns}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = spawned.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            spawned.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Inside {
        status,
        output: spawned.log(),
    }
}

/// Start the ignored test `test` inside `ns` in the background (a role).
pub fn spawn_inside(ns: &str, test: &str, env: &[(String, String)]) -> Spawned {
    Spawned::start(reexec(ns, test, env), &format!("{test} inside {ns}"))
}

/// `nft list ruleset` text without the table `family name` (ours): what
/// must stay byte-identical whatever the proxy does.
pub fn ruleset_without(ruleset: &str, family: &str, name: &str) -> String {
    let ours = format!("table {family} {name} ");
    let mut out = String::new();
    let mut skipping = false;
    for line in ruleset.lines() {
        if line.starts_with("table ") {
            skipping = line.starts_with(&ours);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
