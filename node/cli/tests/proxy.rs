//! Behind a reverse proxy: from an address in `[http] trusted_proxies`, the client's
//! address comes from `X-Forwarded-For` (each client its own rate limit) and HTTPS from
//! `X-Forwarded-Proto` (every cookie `Secure`); from anyone else both headers are
//! ignored, so a client cannot choose its address or its bucket.

mod common;

use common::http::{get, post_form};
use common::{wait_for, Node};
use std::time::Duration;

const TOKEN: &str = "proxy-operator-token-0123456789";

/// A national node with pages and a rate of 60 a minute (bursts of 6).
fn node(trusted: &str) -> (Node, String) {
    let mut node = Node::new("000000");
    let file = node.dir.path().join("api-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cfg = std::fs::read_to_string(&node.config).unwrap().replace(
        "[inbox]",
        &format!("[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\nrate_per_minute = 60\n{trusted}\n[inbox]"),
    );
    std::fs::write(&node.config, cfg).unwrap();
    node.start();
    let f = node.dir.path().join("data/http-address");
    wait_for("the HTTP address", Duration::from_secs(60), || f.exists());
    let addr = std::fs::read_to_string(f).unwrap();
    (node, addr)
}

fn statuses(addr: &str, client: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| get(addr, "/api/v1/regions?level=province", &[("X-Forwarded-For", client)]).status).collect()
}

fn login_cookie(addr: &str, proto: &str) -> String {
    let origin = format!("http://{addr}");
    let r = post_form(addr, "/admin/login", &[("Origin", &origin), ("X-Forwarded-Proto", proto)], &[("token", TOKEN)]);
    assert_eq!(r.status, 303, "{}", r.text());
    r.header("set-cookie").unwrap().to_string()
}

#[test]
fn a_trusted_proxy_names_the_client_and_the_scheme() {
    let (_node, addr) = node("trusted_proxies = [\"127.0.0.0/8\"]");
    let first = statuses(&addr, "203.0.113.1", 7);
    assert_eq!(&first[..6], [200; 6]);
    assert_eq!(first[6], 429, "the client's own bucket runs out");
    assert_eq!(statuses(&addr, "198.51.100.7, 127.0.0.1", 1), [200], "another client, through two proxies, has its own");
    assert!(login_cookie(&addr, "https").contains("; Secure"));
    assert!(!login_cookie(&addr, "http").contains("Secure"));
}

#[test]
fn from_anyone_else_the_forwarding_headers_are_ignored() {
    let (_node, addr) = node("");
    assert!(!login_cookie(&addr, "https").contains("Secure"));
    let mut all = statuses(&addr, "203.0.113.1", 6);
    all.extend(statuses(&addr, "203.0.113.2", 1));
    assert_eq!(all.last(), Some(&429), "one bucket, whatever the header says: {all:?}");
}
