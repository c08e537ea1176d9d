//! Our own request/response types: what plugins see of a query and give back.
//!
//! Plugins and the index depend only on these and `hickory_proto` value
//! types, never on the transport, so the UDP and TCP loops can change
//! without touching them.

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Plain DNS over UDP.
    Udp,
    /// Plain DNS over TCP.
    Tcp,
}

impl Transport {
    /// `udp` / `tcp`, as CoreDNS's metrics and log plugin spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// EDNS0 options as `(code, data)`, in message order.
pub type EdnsOptions = Vec<(u16, Box<[u8]>)>;

/// One question, as a plugin sees it.
#[derive(Clone, Debug)]
pub struct Query {
    /// The message ID (the `log` plugin's `{>id}`).
    pub id: u16,
    /// The query name exactly as the client sent it (case preserved for 0x20).
    pub name: Name,
    /// The same name, lower-cased: what zone matching and lookups use.
    pub lower: Name,
    /// The query type.
    pub qtype: RecordType,
    /// The query class (IN in practice).
    pub qclass: DNSClass,
    /// Where the query came from.
    pub src: SocketAddr,
    /// The transport.
    pub transport: Transport,
    /// EDNS UDP payload size the client advertised, if it sent an OPT record.
    pub edns_payload: Option<u16>,
    /// The DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// Recursion desired bit.
    pub recursion_desired: bool,
    /// The request carried an NSID option (RFC 5001): the `nsid` plugin answers it.
    pub nsid: bool,
    /// The request's EDNS0 options as `(code, data)`, in the client's order
    /// (without the hop-by-hop COOKIE, TCP-KEEPALIVE and PADDING), after any
    /// `rewrite edns0` rule changed them: what `forward` puts in its upstream
    /// query's OPT. `None` (no allocation) when there are none, which is
    /// almost every query.
    pub edns_options: Option<Box<EdnsOptions>>,
}

impl Query {
    /// A query built from a name and type (for tests and internal probes).
    pub fn new(name: Name, qtype: RecordType, src: SocketAddr, transport: Transport) -> Self {
        Self {
            id: 0,
            lower: name.to_lowercase(),
            name,
            qtype,
            qclass: DNSClass::IN,
            src,
            transport,
            edns_payload: None,
            dnssec_ok: false,
            recursion_desired: true,
            nsid: false,
            edns_options: None,
        }
    }
}

/// A plugin's answer to a [`Query`].
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The response code.
    pub rcode: ResponseCode,
    /// The AA bit: set by authoritative plugins (kubernetes).
    pub authoritative: bool,
    /// The TC bit as decided by a plugin (e.g. a truncated upstream answer);
    /// the server sets it as well when the answer does not fit the client's size.
    pub truncated: bool,
    /// The RA bit.
    pub recursion_available: bool,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section (without OPT: the server adds it).
    pub additionals: Vec<Record>,
    /// The plugin that wrote this answer (CoreDNS's `plugin` metric label);
    /// filled in by the chain for plugins that create an answer.
    pub writer: &'static str,
    /// Set by a writer whose answer is a pure function of the request and
    /// of its data at this generation (the kubernetes index): the server may
    /// then answer the same request bytes again from its memo until the
    /// writer's [`memo_generation`](crate::plugin::Plugin::memo_generation)
    /// moves on. See [`crate::dns::memo`].
    pub memo: Option<u64>,
    /// What the response's OPT record carries beyond the defaults, and
    /// whether to send a response at all; `None` (no allocation) for almost
    /// every answer.
    pub extras: Option<Box<Extras>>,
}

/// The rarely used parts of a response: set by `bufsize`, `nsid`,
/// `template ederror` and `acl drop`, applied when the response is encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// `bufsize`: the UDP payload size the response must fit and advertises,
    /// when smaller than the client's.
    pub udp_size: Option<u16>,
    /// `nsid`: the NSID option's payload (only for requests that asked).
    pub nsid: Option<std::sync::Arc<[u8]>>,
    /// `template ederror`: an Extended DNS Error (RFC 8914) code and text.
    pub ede: Option<(u16, std::sync::Arc<str>)>,
    /// `acl drop`: send no response at all.
    pub silent: bool,
}

impl Answer {
    /// The extras, created on first use.
    pub fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Whether no response is to be sent (`acl drop`).
    pub fn is_silent(&self) -> bool {
        self.extras.as_ref().is_some_and(|e| e.silent)
    }
}

impl Answer {
    /// An empty answer with this response code.
    pub fn rcode(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: false,
            truncated: false,
            recursion_available: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            writer: "",
            memo: None,
            extras: None,
        }
    }
}
