//! `view`: split DNS through the real binary, asked by `dig` from different
//! loopback source addresses — CoreDNS's documented example (one zone, three
//! blocks: two views by client network and a default), an expression on the
//! query type, and the `view` label on the request metrics.

mod common;

use common::{TestServer, dig, dig_section as section, require};

const COREFILE: &str = "\
.:{PORT} {
    bind 127.0.0.1
    view example1 {
        expr incidr(client_ip(), '127.0.0.0/30')
    }
    prometheus 127.0.0.1:{METRICS}
    hosts {
        1.1.1.1 test
    }
}
.:{PORT} {
    bind 127.0.0.1
    view example2 {
        expr incidr(client_ip(), '127.0.0.4/30') && type() == 'A'
    }
    prometheus 127.0.0.1:{METRICS}
    hosts {
        2.2.2.2 test
    }
}
.:{PORT} {
    bind 127.0.0.1
    prometheus 127.0.0.1:{METRICS}
    hosts {
        3.3.3.3 test
    }
}
";

#[test]
fn each_client_network_gets_its_views_answer_and_others_the_default() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::spawn(COREFILE, &[]);
    let answer = |from: &str, qtype: &str| {
        let out = dig(&tool, &srv, &["-b", from, qtype, "test."]);
        section(&out, "ANSWER")
    };
    assert_eq!(answer("127.0.0.1", "A"), ["test. 3600 IN A 1.1.1.1"]);
    assert_eq!(answer("127.0.0.3", "A"), ["test. 3600 IN A 1.1.1.1"]);
    assert_eq!(answer("127.0.0.5", "A"), ["test. 3600 IN A 2.2.2.2"]);
    assert_eq!(answer("127.0.0.9", "A"), ["test. 3600 IN A 3.3.3.3"]);
    // example2 holds only for A: a TXT question from its network goes to the default block.
    let out = dig(&tool, &srv, &["-b", "127.0.0.5", "TXT", "test."]);
    assert!(out.contains("status: NOERROR"), "{out}");
    // The same question repeated from different networks is never answered from a memo.
    for _ in 0..3 {
        assert_eq!(answer("127.0.0.1", "A"), ["test. 3600 IN A 1.1.1.1"]);
        assert_eq!(answer("127.0.0.9", "A"), ["test. 3600 IN A 3.3.3.3"]);
    }
    let (_, body) = srv.http_get(srv.metrics_port, "/metrics").expect("metrics");
    for view in ["example1", "example2", ""] {
        assert!(
            body.lines()
                .any(|l| l.starts_with("coredns_dns_requests_total{")
                    && l.contains(&format!("view=\"{view}\""))),
            "no requests in view '{view}':\n{body}"
        );
    }
}
