//! The two-octet length framing of DNS over TCP (RFC 1035 §4.2.2), as pure
//! buffer logic with no I/O, so that the connection loop can read whatever
//! bytes have arrived and take every complete query out of them at once.
//!
//! [`Frames`] holds the received bytes: [`Frames::next`] yields each complete
//! message in order, and a message split across reads stays buffered until
//! its last byte arrives. [`push_framed`] appends one framed response to an
//! output buffer, so a batch of responses goes out in one write.

/// Free space below which the buffer is grown before a read.
const MIN_SPARE: usize = 512;
/// How much room a read gets at least (a batch of pipelined queries).
const READ_CHUNK: usize = 4096;
/// An emptied buffer larger than this gives its memory back (one 64 KiB
/// query must not cost every idle connection 64 KiB).
const KEEP: usize = 4 * READ_CHUNK;

/// Received bytes, of which `buf[start..]` are not yet taken.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    buf: Vec<u8>,
    start: usize,
}

impl Frames {
    /// The next complete message (without its length prefix), if one has
    /// fully arrived.
    pub(crate) fn next(&mut self) -> Option<&[u8]> {
        let len = self.complete_len()?;
        let msg = self.start + 2..self.start + 2 + len;
        self.start = msg.end;
        Some(&self.buf[msg])
    }

    /// Whether a complete message is buffered.
    pub(crate) fn has_complete(&self) -> bool {
        self.complete_len().is_some()
    }

    /// Whether part of a message (at least its first byte, not its last) is
    /// buffered: a query has started arriving.
    pub(crate) fn has_partial(&self) -> bool {
        self.start < self.buf.len() && !self.has_complete()
    }

    /// The buffer to append received bytes to (`read_buf`), with the taken
    /// bytes dropped and room for at least the rest of the message begun.
    pub(crate) fn spare(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
        let missing = self.missing();
        let spare = self.buf.capacity() - self.buf.len();
        if spare < missing.max(MIN_SPARE) {
            self.buf.reserve(missing.max(READ_CHUNK));
        }
        &mut self.buf
    }

    /// The length of the message at `start` if all of it is buffered.
    fn complete_len(&self) -> Option<usize> {
        let rest = &self.buf[self.start..];
        let [a, b, ..] = *rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([a, b]));
        (rest.len() >= 2 + len).then_some(len)
    }

    /// Bytes still to arrive for the message begun at `start` (its length
    /// prefix when that is not complete).
    fn missing(&self) -> usize {
        let rest = &self.buf[self.start..];
        match *rest {
            [a, b, ..] => (2 + usize::from(u16::from_be_bytes([a, b]))).saturating_sub(rest.len()),
            _ => 2 - rest.len(),
        }
    }
}

/// Append `msg` with its length prefix to `out`; false (nothing appended)
/// when it is longer than a frame can say.
pub(crate) fn push_framed(out: &mut Vec<u8>, msg: &[u8]) -> bool {
    let Ok(len) = u16::try_from(msg.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(push_framed(&mut out, msg));
        out
    }

    /// Feed `chunks` one read at a time; the messages taken after each read.
    fn feed(chunks: &[&[u8]]) -> (Vec<Vec<Vec<u8>>>, Frames) {
        let mut f = Frames::default();
        let mut taken = Vec::new();
        for chunk in chunks {
            f.spare().extend_from_slice(chunk);
            let mut now = Vec::new();
            while let Some(m) = f.next() {
                now.push(m.to_vec());
            }
            taken.push(now);
        }
        (taken, f)
    }

    #[test]
    fn messages_are_taken_when_their_last_byte_arrives() {
        let one = framed(b"abc");
        let two = framed(b"defgh");
        let both = [one.clone(), two.clone()].concat();
        let empty = framed(b"");
        type Case<'a> = (&'a str, Vec<&'a [u8]>, Vec<Vec<&'a [u8]>>, bool);
        let cases: Vec<Case<'_>> = vec![
            ("one whole", vec![&one], vec![vec![b"abc"]], false),
            (
                "two in one read",
                vec![&both],
                vec![vec![b"abc", b"defgh"]],
                false,
            ),
            (
                "length split",
                vec![&one[..1], &one[1..]],
                vec![vec![], vec![b"abc"]],
                false,
            ),
            (
                "body split",
                vec![&one[..3], &one[3..]],
                vec![vec![], vec![b"abc"]],
                false,
            ),
            (
                "second split across reads",
                vec![&both[..7], &both[7..9], &both[9..]],
                vec![vec![b"abc"], vec![], vec![b"defgh"]],
                false,
            ),
            (
                "byte by byte",
                one.chunks(1).collect(),
                vec![vec![], vec![], vec![], vec![], vec![b"abc"]],
                false,
            ),
            ("zero length", vec![&empty], vec![vec![b""]], false),
            ("one and a half", vec![&both[..8]], vec![vec![b"abc"]], true),
            ("half a prefix", vec![&one[..1]], vec![vec![]], true),
        ];
        for (what, chunks, want, partial) in cases {
            let (taken, f) = feed(&chunks);
            let want: Vec<Vec<Vec<u8>>> = want
                .iter()
                .map(|r| r.iter().map(|m| m.to_vec()).collect())
                .collect();
            assert_eq!(taken, want, "{what}");
            assert_eq!(f.has_partial(), partial, "{what}: partial");
            assert!(!f.has_complete(), "{what}: a complete message left behind");
        }
    }

    #[test]
    fn a_largest_message_fits_and_memory_is_given_back() {
        let big = vec![7u8; usize::from(u16::MAX)];
        let whole = framed(&big);
        let mut f = Frames::default();
        let mut fed = 0;
        // Reads never get more room than spare() made: the buffer must grow
        // to hold the whole message without the loop pushing past capacity.
        while fed < whole.len() {
            let buf = f.spare();
            let room = buf.capacity() - buf.len();
            assert!(room > 0, "no room after {fed} bytes");
            let n = room.min(whole.len() - fed);
            buf.extend_from_slice(&whole[fed..fed + n]);
            fed += n;
        }
        assert_eq!(f.next(), Some(&big[..]));
        assert_eq!(f.next(), None);
        assert!(
            f.spare().capacity() <= KEEP,
            "64 KiB kept by an idle connection"
        );
    }

    #[test]
    fn taken_bytes_are_dropped_before_the_next_read() {
        let one = framed(b"abc");
        let mut f = Frames::default();
        f.spare().extend_from_slice(&[&one[..], &one[..2]].concat());
        assert_eq!(f.next(), Some(&b"abc"[..]));
        assert_eq!(f.spare().len(), 2, "only the begun message stays");
        f.spare().extend_from_slice(&one[2..]);
        assert_eq!(f.next(), Some(&b"abc"[..]));
    }

    #[test]
    fn push_framed_prefixes_the_length_and_refuses_what_cannot_be_framed() {
        let mut out = vec![9];
        assert!(push_framed(&mut out, b"xy"));
        assert_eq!(out, [9, 0, 2, b'x', b'y']);
        let too_long = vec![0u8; usize::from(u16::MAX) + 1];
        assert!(!push_framed(&mut out, &too_long));
        assert_eq!(out.len(), 5, "nothing appended");
    }
}
