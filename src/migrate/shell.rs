//! The I/O of `clusterdns migrate FILE`: read the file, print the Corefile on
//! stdout and each note on stderr as `FILE:LINE: message`, and say with the
//! exit code whether the result behaves as the input did.

use std::io::Write;
use std::path::Path;

use super::migrate;

/// Exit code when the result behaves differently (something dropped or changed).
pub const EXIT_CHANGED: u8 = 1;
/// Exit code when nothing could be made of the input (sysexits EX_USAGE, as for a bad Corefile).
pub const EXIT_INVALID: u8 = 64;

/// Migrate the file at `path`, writing the Corefile to `out` and the notes to
/// `err`; the exit code: 0 equivalent, [`EXIT_CHANGED`], or [`EXIT_INVALID`].
pub fn run(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let name = path.display().to_string();
    let at = |line: u32| {
        if line == 0 {
            name.clone()
        } else {
            format!("{name}:{line}")
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "{name}: cannot read: {e}");
            return EXIT_INVALID;
        }
    };
    let m = match migrate(&text, &name) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", at(e.line()));
            return EXIT_INVALID;
        }
    };
    if out.write_all(m.corefile.as_bytes()).is_err() {
        let _ = writeln!(err, "{name}: cannot write the Corefile to stdout");
        return EXIT_INVALID;
    }
    for n in &m.notes {
        let _ = writeln!(err, "{}: {}", at(n.line), n.message);
    }
    if m.changes_behaviour() {
        let n = m.notes.iter().filter(|n| n.changes_behaviour).count();
        let _ = writeln!(
            err,
            "{name}: the result behaves differently: {n} construct(s) above dropped or changed"
        );
        EXIT_CHANGED
    } else {
        0
    }
}
