//! Which of the connection limits bounds the connection loop's next wait,
//! as a pure function of the connection's state, so the meaning of the idle
//! and read timeouts is written (and tested) in one place.

/// The timeout that applies while the connection loop waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wait {
    /// No query started and no answer pending: [`super::TcpLimits::idle`].
    Idle,
    /// A query has started arriving: [`super::TcpLimits::read`] from its first byte.
    Read,
    /// Answers are pending, or no more queries are read: no connection
    /// timeout (the plugins bound their own waits).
    None,
}

/// The timeout for a loop that `reading` (not stopped, not at the bound of
/// pending answers), with part of a query buffered (`partial`) and `pending`
/// answers outstanding.
pub(super) fn wait(reading: bool, partial: bool, pending: usize) -> Wait {
    match (reading, partial, pending) {
        (false, _, _) => Wait::None,
        (true, true, _) => Wait::Read,
        (true, false, 0) => Wait::Idle,
        (true, false, _) => Wait::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_that_applies() {
        let cases = [
            // (reading, partial, pending, want, why)
            (
                true,
                false,
                0,
                Wait::Idle,
                "nothing started, nothing pending",
            ),
            (true, true, 0, Wait::Read, "a query is trickling in"),
            (
                true,
                true,
                3,
                Wait::Read,
                "a query trickles in behind pending ones",
            ),
            (true, false, 3, Wait::None, "only waiting on answers"),
            (
                false,
                true,
                64,
                Wait::None,
                "at the bound: the client is waiting on us",
            ),
            (
                false,
                false,
                0,
                Wait::None,
                "stopped reading (shutdown, EOF)",
            ),
        ];
        for (reading, partial, pending, want, why) in cases {
            assert_eq!(wait(reading, partial, pending), want, "{why}");
        }
    }
}
