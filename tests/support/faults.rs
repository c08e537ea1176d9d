//! Faults the test API server can inject per resource type: HTTP errors,
//! bodies that are not JSON, watch streams cut in the middle of an event.
//!
//! A fault is armed for a resource's plural, for a number of shots or until
//! cleared; each request or event that triggers it uses one shot and leaves a
//! `FAULT ...` line in the request log. Bad *objects* (missing fields, absurd
//! values) need no fault: `ApiServer::apply_json` stores any JSON object.

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// LIST and WATCH requests get this HTTP status with a `Status` body.
    Status(u16),
    /// LIST requests get a 200 whose body stops in the middle of the JSON.
    MalformedList,
    /// Before its next event, a watch stream sends a line that is not JSON.
    MalformedEvent,
    /// A watch stream sends half of its next event's line, then ends.
    CutWatch,
    /// CREATE, REPLACE and PATCH requests get this HTTP status (e.g. 409: a
    /// write that lost an optimistic-concurrency race).
    WriteStatus(u16),
}

struct Armed {
    plural: &'static str,
    fault: Fault,
    /// Shots left; `None` until cleared.
    remaining: Option<usize>,
}

/// The armed faults (behind a mutex in the server).
#[derive(Default)]
pub struct Faults {
    armed: Vec<Armed>,
}

impl Faults {
    /// Arm `fault` for `plural`, for `times` shots (`None`: until cleared).
    pub fn arm(&mut self, plural: &'static str, fault: Fault, times: Option<usize>) {
        self.armed.push(Armed {
            plural,
            fault,
            remaining: times,
        });
    }

    /// Disarm everything.
    pub fn clear(&mut self) {
        self.armed.clear();
    }

    /// Use one shot of an armed fault of `plural` that `want` accepts.
    pub fn take(&mut self, plural: &str, want: impl Fn(Fault) -> bool) -> Option<Fault> {
        let i = self
            .armed
            .iter()
            .position(|a| a.plural == plural && want(a.fault))?;
        let fault = self.armed[i].fault;
        if let Some(n) = &mut self.armed[i].remaining {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.armed.remove(i);
            }
        }
        Some(fault)
    }
}
