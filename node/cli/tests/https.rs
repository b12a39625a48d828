//! HTTPS served by the node itself (`[http] cert` and `key`): a browser-like client
//! that trusts the office's certificate reads the API and signs in (every cookie
//! `Secure`); a key others can read stops the start with a message saying so; a client
//! that opens a connection and says nothing holds up nobody; plain HTTP on the port
//! gets no page; a renewed certificate is served from the next connection, no restart.

mod common;

use common::{wait_for, Node};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "https-operator-token-0123456789";

/// A certificate for `localhost` and 127.0.0.1 and its key, written as PEM (key 0600);
/// the certificate's DER.
fn certificate(dir: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let key = dir.join("https.key");
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.join("https.crt"), ck.cert.pem()).unwrap();
    ck.cert.der().to_vec()
}

/// One request over TLS trusting only `trusted`: the answer's status line and headers,
/// its body, and the certificate the server showed.
fn https(addr: &str, trusted: &[u8], request: &str) -> (String, String, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(trusted.to_vec())).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    if let Err(e) = tls.read_to_end(&mut raw) {
        // A server may close without close_notify once the answer is complete.
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }
    let shown = tls.conn.peer_certificates().unwrap()[0].to_vec();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string(), shown)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

#[test]
fn the_node_serves_https_itself_with_secure_cookies_and_a_renewed_certificate() {
    let mut node = Node::new("000000");
    let dir = node.dir.path().to_path_buf();
    std::fs::write(dir.join("api-token"), format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(dir.join("api-token"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let first = certificate(&dir);
    let cfg = std::fs::read_to_string(&node.config).unwrap().replace(
        "[inbox]",
        "[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"api-token\"\ncert = \"https.crt\"\nkey = \"https.key\"\n\n[inbox]",
    );
    std::fs::write(&node.config, cfg).unwrap();

    // A key others can read: the node does not start, and says why.
    std::fs::set_permissions(dir.join("https.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut run = std::process::Command::new(common::bin())
        .args(["run", "--config"])
        .arg(&node.config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "a readable key must stop the start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    run.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("https.key") && err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(dir.join("https.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    node.start();
    let f = dir.join("data/http-address");
    wait_for("the HTTPS address", Duration::from_secs(60), || f.exists());
    let addr = std::fs::read_to_string(f).unwrap();

    // A client that connects and says nothing does not hold up the next one.
    let _silent = TcpStream::connect(&addr).unwrap();
    let (head, body, shown) = https(&addr, &first, &get("/api/v1/regions?level=province"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("湖北省"), "{body}");
    assert_eq!(shown, first);

    // Signed in over HTTPS, the cookie is Secure.
    let form = format!("token={TOKEN}");
    let login = format!(
        "POST /admin/login HTTP/1.1\r\nHost: localhost\r\nOrigin: https://localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    let (head, _, _) = https(&addr, &first, &login);
    let cookie = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap_or_else(|| panic!("{head}"));
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");

    // Plain HTTP on the HTTPS port gets no page.
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    plain.write_all(get("/").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"), "plain HTTP was served");

    // A renewed certificate is served from the next connection on.
    let second = certificate(&dir);
    // As a renewal tool leaves them: files with a new modification time.
    for f in ["https.crt", "https.key"] {
        let file = std::fs::File::options().write(true).open(dir.join(f)).unwrap();
        file.set_modified(std::time::SystemTime::now() + Duration::from_secs(2)).unwrap();
    }
    let (head, _, shown) = https(&addr, &second, &get("/api/v1/regions?level=province"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(shown, second, "the renewed certificate");
    node.stop();
    assert!(node.log().contains("HTTPS certificate reloaded"), "{}", node.log());
}
