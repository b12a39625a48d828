//! `huijiao config check` (all the daemon would check at start, and a little more)
//! and `huijiao init` (a commented starting config and its folders).

use crate::config::Config;
use std::io::Write;
use std::path::Path;

/// One finding of `config check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Ok(String),
    Warn(String),
    Fail(String),
}

impl Finding {
    pub fn is_fail(&self) -> bool {
        matches!(self, Finding::Fail(_))
    }
}

/// Whether the parent answers. While the daemon runs, its uplink says (a probe would
/// replace its very session at the parent); otherwise a QUIC and TLS handshake with
/// this node's certificate, closed at once, within 3 s.
fn parent_answers(cfg: &Config, p: &crate::config::Parent, addr: std::net::SocketAddr) -> Finding {
    if crate::admin::ask(&cfg.data_dir).is_some() {
        let uplink = crate::store::Reader::open(&cfg.db_path()).ok().and_then(|r| r.uplink().ok().flatten());
        return match uplink {
            Some(u) if u.state == "streaming" => {
                Finding::Ok(format!("parent {} at {} answers: the running node streams to it", p.node_id, p.address))
            }
            Some(u) => Finding::Warn(format!(
                "parent {} at {}: the running node's uplink is {}{}",
                p.node_id,
                p.address,
                u.state,
                u.last_error.map(|e| format!(": {e}")).unwrap_or_default()
            )),
            None => Finding::Warn(format!("parent {} at {}: the running node has not reached it yet", p.node_id, p.address)),
        };
    }
    let Some(t) = &cfg.tls else { return Finding::Ok(format!("parent {} at {} resolves", p.node_id, p.address)) };
    let probe = || -> anyhow::Result<Result<(), crate::net::SessionError>> {
        let identity = crate::net::Identity::load(t, &cfg.node_id)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let endpoint = crate::net::client_endpoint(addr.is_ipv6())?;
            let connecting =
                endpoint.connect_with(identity.client_config(cfg.idle_timeout())?, addr, &crate::pki::node_dns_name(&p.node_id))?;
            let r = match tokio::time::timeout(std::time::Duration::from_secs(3), connecting).await {
                Ok(Ok(conn)) => {
                    conn.close(crate::net::CLOSE_DONE.into(), b"config check");
                    Ok(())
                }
                Ok(Err(cause)) => Err(crate::net::SessionError::Connection { what: "handshake".into(), cause }),
                Err(_) => Err(crate::net::SessionError::Timeout("no answer within 3 s".into())),
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), endpoint.wait_idle()).await;
            Ok(r)
        })
    };
    match probe() {
        Ok(Ok(())) => {
            Finding::Ok(format!("parent {} at {} answers (QUIC and TLS handshake with this node's certificate)", p.node_id, p.address))
        }
        Ok(Err(e)) => match e.refusal() {
            Some(r) => Finding::Fail(format!("parent {} at {} refuses this node: {r}", p.node_id, p.address)),
            None => Finding::Warn(format!(
                "parent {} at {} does not answer ({e:#}); the node will keep trying (is the parent running? UDP open on the way?)",
                p.node_id, p.address
            )),
        },
        Err(e) => Finding::Warn(format!("parent {} at {}: cannot try it ({e:#})", p.node_id, p.address)),
    }
}

/// Whether this process can write into `dir` (or, when it does not exist yet, create it).
fn writable(dir: &Path) -> Result<bool, String> {
    let probe = dir.ancestors().find(|a| a.exists()).ok_or_else(|| "no existing parent folder".to_string())?;
    Ok(rustix::fs::access(probe, rustix::fs::Access::WRITE_OK).is_ok())
}

/// Checks a config file the way the daemon would use it: the file itself, folders,
/// permissions, certificates (chain, name, expiry, revocation), addresses, the API
/// token. Returns every finding; any `Fail` means the daemon would not run well.
pub fn check(path: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let cfg = match Config::load(path) {
        Ok(c) => {
            out.push(Finding::Ok(format!("{}: keys and values are valid (node {})", path.display(), c.node_id)));
            c
        }
        Err(e) => {
            out.push(Finding::Fail(format!("{e:#}")));
            return out;
        }
    };
    check_folders(&cfg, &mut out);
    check_tls(&cfg, &mut out);
    if let Some(p) = &cfg.parent {
        let resolved = std::net::ToSocketAddrs::to_socket_addrs(p.address.as_str()).map(|mut a| a.next());
        match resolved {
            Ok(Some(addr)) => out.push(parent_answers(&cfg, p, addr)),
            _ if !p.address.contains(':') => out.push(Finding::Fail(format!("key `parent.address`: `{}` is not host:port", p.address))),
            _ => out.push(Finding::Warn(format!(
                "parent address {} does not resolve now; the node will keep trying (check DNS or the address)",
                p.address
            ))),
        }
    }
    if let Some(h) = &cfg.http {
        match h.token_file.as_deref().map(crate::http::read_token) {
            Some(Err(e)) => out.push(Finding::Fail(format!("key `http.token_file`: {e:#}"))),
            Some(Ok(_)) => out.push(Finding::Ok("the API token file is private and well-formed".into())),
            None => out.push(Finding::Warn("[http] has no token_file: the operator endpoints and /admin are off".into())),
        }
    }
    out
}

fn check_folders(cfg: &Config, out: &mut Vec<Finding>) {
    match writable(&cfg.data_dir) {
        Ok(true) => out.push(Finding::Ok(format!("data_dir {} is writable", cfg.data_dir.display()))),
        Ok(false) => out.push(Finding::Fail(format!("data_dir {} is not writable by this user", cfg.data_dir.display()))),
        Err(e) => out.push(Finding::Fail(format!("data_dir {}: {e}", cfg.data_dir.display()))),
    }
    // The store as the node opens it: for reading and writing (a restore run as root
    // may have left it root's).
    let db = cfg.db_path();
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if !path.exists() {
            continue;
        }
        match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
            Ok(_) => {
                if suffix.is_empty() {
                    out.push(Finding::Ok(format!("the store {} opens for reading and writing", path.display())));
                }
            }
            Err(e) => out.push(Finding::Fail(format!(
                "the store file {} cannot be opened for writing by this user ({e}): was it restored as another user? give it back: chown -R <service user>: {}",
                path.display(),
                cfg.data_dir.display()
            ))),
        }
    }
    if let Ok(m) = std::fs::metadata(&cfg.data_dir) {
        use std::os::unix::fs::PermissionsExt;
        if m.permissions().mode() & 0o007 != 0 {
            out.push(Finding::Warn(format!(
                "data_dir {} can be read by others (mode {:o}): the store holds 内部 records; chmod 700",
                cfg.data_dir.display(),
                m.permissions().mode() & 0o777
            )));
        }
    }
    for i in &cfg.inboxes {
        for (what, dir) in [("inbox", &i.path), ("processed", &i.processed), ("rejected", &i.rejected)] {
            match writable(dir) {
                Ok(true) => {}
                _ => out.push(Finding::Fail(format!("{what} folder {} is not writable by this user", dir.display()))),
            }
        }
    }
    if !cfg.inboxes.is_empty() {
        out.push(Finding::Ok(format!("{} inbox folder(s) usable", cfg.inboxes.len())));
    }
}

fn check_tls(cfg: &Config, out: &mut Vec<Finding>) {
    let Some(t) = &cfg.tls else { return };
    let identity = match crate::net::Identity::load(t, &cfg.node_id) {
        Ok(i) => i,
        Err(e) => {
            out.push(Finding::Fail(format!("[tls]: {e:#}")));
            return;
        }
    };
    let _ = identity;
    let parse = |p: &Path| -> Result<Vec<u8>, String> {
        let certs = crate::pki::load_certs(p).map_err(|e| format!("{e:#}"))?;
        certs.first().map(|c| c.as_ref().to_vec()).ok_or_else(|| format!("no certificate in {}", p.display()))
    };
    let (ca, cert) = match (parse(&t.ca), parse(&t.cert)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            out.push(Finding::Fail(e));
            return;
        }
    };
    let (Ok((_, ca_x)), Ok((_, cert_x))) = (x509_parser::parse_x509_certificate(&ca), x509_parser::parse_x509_certificate(&cert)) else {
        out.push(Finding::Fail("a certificate cannot be parsed".into()));
        return;
    };
    match cert_x.verify_signature(Some(ca_x.public_key())) {
        Ok(()) => out.push(Finding::Ok(format!("{} is signed by the CA {}", t.cert.display(), t.ca.display()))),
        Err(_) => out.push(Finding::Fail(format!(
            "{} is not signed by the CA in {} (a certificate from another federation's CA?)",
            t.cert.display(),
            t.ca.display()
        ))),
    }
    for (what, c) in [("node certificate", &cert_x), ("CA certificate", &ca_x)] {
        let days = crate::pki::days_left(c.validity().not_after.timestamp());
        if days < 0 {
            out.push(Finding::Fail(format!("the {what} expired {} day(s) ago: renew it (huijiao pki renew)", -days)));
        } else if days < crate::pki::EXPIRY_WARNING_DAYS {
            out.push(Finding::Warn(format!("the {what} expires in {days} day(s): renew it soon (huijiao pki renew)")));
        } else {
            out.push(Finding::Ok(format!("the {what} is valid for {days} more days")));
        }
    }
    match crate::pki::revoked_serials(&t.crl) {
        Ok(revoked) => {
            let serial = crate::pki::hex_serial(cert_x.raw_serial());
            if revoked.iter().any(|r| r.eq_ignore_ascii_case(&serial)) {
                out.push(Finding::Fail(format!("the node certificate (serial {serial}) is revoked by {}", t.crl.display())));
            }
        }
        Err(e) => out.push(Finding::Fail(format!("CRL {}: {e:#}", t.crl.display()))),
    }
}

/// Prints the findings; returns the exit status (1 if any failed).
pub fn print(findings: &[Finding], out: &mut dyn Write) -> std::io::Result<i32> {
    for f in findings {
        match f {
            Finding::Ok(m) => writeln!(out, "ok    {m}")?,
            Finding::Warn(m) => writeln!(out, "warn  {m}")?,
            Finding::Fail(m) => writeln!(out, "FAIL  {m}")?,
        }
    }
    let failed = findings.iter().filter(|f| f.is_fail()).count();
    if failed == 0 {
        writeln!(out, "config OK")?;
        Ok(0)
    } else {
        writeln!(out, "{failed} problem(s): the node would not run as configured")?;
        Ok(1)
    }
}

/// What `huijiao init` writes.
pub struct InitOptions<'a> {
    pub node_id: &'a str,
    pub parent: Option<(&'a str, &'a str)>,
    pub config: &'a Path,
    pub data_dir: &'a Path,
    pub inbox: &'a Path,
    pub force: bool,
}

/// `huijiao init`: a commented config for a node of this tier and its folders.
pub fn init(o: &InitOptions<'_>) -> anyhow::Result<String> {
    use huijiao_protocol::regions::{node_level, Level, NATIONAL};
    let table = huijiao_protocol::RegionTable::embedded();
    crate::config::check_node_id(o.node_id, table)?;
    if o.config.exists() && !o.force {
        anyhow::bail!("{} exists; refusing to overwrite it (--force replaces it)", o.config.display());
    }
    let level = node_level(o.node_id);
    let name = table.get(o.node_id).map(|r| r.name.clone()).unwrap_or_default();
    let parent = match (o.parent, o.node_id == NATIONAL) {
        (Some(_), true) => anyhow::bail!("the national node has no parent"),
        (None, false) => anyhow::bail!(
            "--parent ADDRESS NODE_ID is required: every node but the national one sends its records up (its parent is usually {})",
            table.get(o.node_id).map(|r| r.parent.clone()).unwrap_or_default()
        ),
        (p, _) => p,
    };
    let etc = o.config.parent().unwrap_or(Path::new("."));
    let mut t = format!(
        "# huijiao node {id} ({name}), written by `huijiao init`. Every key is explained in\n\
         # config/county.toml of the source; check with `huijiao config check --config {cfg}`.\n\n\
         node_id = \"{id}\"\n\
         # The store and the search catalogue; private to the service user.\n\
         data_dir = \"{data}\"\n\n\
         [inbox]\n\
         # Clerks drop files here (group huijiao-inbox); verdicts go to processed/ and\n\
         # rejected/ beside it.\n\
         paths = [\"{inbox}\"]\n\n",
        id = o.node_id,
        cfg = o.config.display(),
        data = o.data_dir.display(),
        inbox = o.inbox.display(),
    );
    if level != Level::County {
        t.push_str("# Where the nodes below connect (UDP, QUIC with mutual TLS).\n[listen]\naddress = \"0.0.0.0:7443\"\n\n");
    }
    if let Some((addr, id)) = parent {
        t.push_str(&format!("# Where this node sends its records.\n[parent]\naddress = \"{addr}\"\nnode_id = \"{id}\"\n\n"));
    }
    t.push_str(&format!(
        "# Files from `huijiao pki` (the CA's operator issues {id}.crt and {id}.key).\n[tls]\n\
         ca = \"{etc}/ca.crt\"\ncert = \"{etc}/{id}.crt\"\nkey = \"{etc}/{id}.key\"\ncrl = \"{etc}/crl.pem\"\n\n\
         # The read API and web pages (docs/catalogue.md); uncomment to serve them.\n\
         # [http]\n# address = \"127.0.0.1:8080\"\n# token_file = \"{etc}/api-token\"\n\n\
         # Prometheus metrics and /healthz (docs/operations.md); uncomment to serve them.\n\
         # [metrics]\n# address = \"127.0.0.1:9464\"\n",
        id = o.node_id,
        etc = etc.display()
    ));
    for d in [o.data_dir.to_path_buf(), o.inbox.to_path_buf()] {
        std::fs::create_dir_all(&d).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", d.display()))?;
    }
    // The store holds 内部 records: its folder is the service user's alone.
    crate::fsx::set_mode(o.data_dir, 0o700)?;
    if let Some(dir) = o.inbox.parent() {
        for sub in ["processed", "rejected"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.join(sub).display()))?;
        }
    }
    crate::fsx::create_dir_all(etc)?;
    std::fs::write(o.config, &t).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", o.config.display()))?;
    Ok(t)
}
