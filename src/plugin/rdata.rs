//! Domain names inside record data, for plugins that rewrite or qualify them
//! (rewrite's `answer`, template's absolute names).

use hickory_proto::rr::{Name, RData};

/// Call `f` on every domain name carried in `data` (CNAME, NS, PTR, MX, SRV
/// targets and the SOA's two names); other types carry none we touch.
pub(crate) fn for_each_name_mut(data: &mut RData, mut f: impl FnMut(&mut Name)) {
    match data {
        RData::CNAME(c) => f(&mut c.0),
        RData::NS(ns) => f(&mut ns.0),
        RData::PTR(p) => f(&mut p.0),
        RData::MX(mx) => f(&mut mx.exchange),
        RData::SRV(srv) => f(&mut srv.target),
        RData::SOA(soa) => {
            f(&mut soa.mname);
            f(&mut soa.rname);
        }
        _ => {}
    }
}
