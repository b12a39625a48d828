//! The node as a systemd service, with the real binary: the unit's hardening and
//! syntax (`systemd-analyze`), the install script into a scratch root, readiness and
//! watchdog on a notify socket the test provides, logs, `config check`, `/metrics`
//! read by a Prometheus parser, backup and restore, and what clerks may read.

mod common;

use common::{bin, wait_for, Node};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_unit_is_hardened_and_valid() {
    let unit = repo().join("systemd/huijiao.service");
    let out =
        Command::new("systemd-analyze").args(["security", "--offline=yes"]).arg(&unit).output().expect("systemd-analyze (Debian: systemd)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for huijiao.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");
    // verify needs the binary where ExecStart says: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("huijiao.service");
    std::fs::write(&copy, std::fs::read_to_string(&unit).unwrap().replace("/usr/bin/huijiao", bin())).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&copy).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("huijiao.service:"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn install_sh_creates_the_user_the_group_and_the_folders() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(repo().join("systemd/install.sh")).arg(bin()).env("DESTDIR", root.path()).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let id_of = |file: &str, name: &str| -> u32 {
        let text = std::fs::read_to_string(root.path().join(file)).unwrap();
        text.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} not in {file}"))
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    let (user, group, clerks) = (id_of("etc/passwd", "huijiao"), id_of("etc/group", "huijiao"), id_of("etc/group", "huijiao-inbox"));
    let groups = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(groups.lines().any(|l| l.starts_with("huijiao-inbox:") && l.ends_with(":huijiao")), "the service is in the clerks' group");
    use std::os::unix::fs::MetadataExt;
    for (path, mode, uid, gid) in [
        ("var/lib/huijiao", 0o700, user, group),
        ("srv/huijiao/inbox", 0o2770, user, clerks),
        ("srv/huijiao/processed", 0o2750, user, clerks),
        ("srv/huijiao/rejected", 0o2750, user, clerks),
        ("etc/huijiao", 0o750, 0, group),
    ] {
        let m = std::fs::metadata(root.path().join(path)).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (mode, uid, gid), "{path}");
    }
    assert!(root.path().join("usr/bin/huijiao").exists() && root.path().join("etc/systemd/system/huijiao.service").exists());
}

/// A notify socket as systemd provides it, collecting what the node says.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn new(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        NotifySocket { sock, path }
    }

    /// Messages received within `limit`, until one holds `want`.
    fn wait(&self, want: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = m.contains(want);
                seen.push(m);
                if done {
                    return seen;
                }
            }
        }
        panic!("no `{want}` within {limit:?}; got {seen:?}");
    }

    /// Whether any message holding `what` arrives within `limit`.
    fn hears(&self, what: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).contains(what) {
                    return true;
                }
            }
        }
        false
    }
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let node = Node::new("420102");
    let notify = NotifySocket::new(node.dir.path());
    let wedge = node.dir.path().join("wedge");
    let log = std::fs::File::create(node.dir.path().join("node.log")).unwrap();
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&node.config)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "400000")
        .env("HUIJIAO_TEST_WEDGE_FILE", &wedge)
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = notify.wait("READY=1", Duration::from_secs(60));
    let line = ready.last().unwrap();
    assert!(line.contains("STATUS=0 records"), "{line}");
    assert!(node.inbox().exists(), "ready after the inbox is watched");
    assert!(notify.hears("WATCHDOG=1", Duration::from_secs(5)), "watchdog pings");
    // A wedged store writer: the pings stop (systemd would restart the node)...
    std::fs::write(&wedge, b"").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut buf = [0u8; 4096];
    while notify.sock.recv(&mut buf).is_ok() {}
    assert!(!notify.hears("WATCHDOG=1", Duration::from_secs(2)), "no pings while the writer is wedged");
    // ...and come back when it answers again.
    std::fs::remove_file(&wedge).unwrap();
    assert!(notify.hears("WATCHDOG=1", Duration::from_secs(5)), "pings again");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    notify.wait("STOPPING=1", Duration::from_secs(30));
    assert!(child.wait().unwrap().success());
}

#[test]
fn logs_are_plain_lines_with_beijing_time_and_a_bad_filter_is_an_error() {
    let node = Node::new("420102");
    let run = |envs: &[(&str, &str)]| {
        let mut c = Command::new(bin());
        c.args(["run", "--config"]).arg(&node.config).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in envs {
            c.env(k, v);
        }
        c.spawn().unwrap()
    };
    // A misspelt level is refused at start, not silence.
    let out = run(&[("HUIJIAO_LOG", "inf0")]).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HUIJIAO_LOG=`inf0` is not a log filter"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (format, check) in [
        ("text", (|l: &str| l.contains("+08:00") && l.contains("INFO")) as fn(&str) -> bool),
        ("journal", |l: &str| l.starts_with("<6>INFO ")),
        ("json", |l: &str| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["timestamp"].as_str().is_some_and(|t| t.ends_with("+08:00")))
        }),
    ] {
        let mut c = run(&[("HUIJIAO_LOG", "info"), ("HUIJIAO_LOG_FORMAT", format)]);
        let stderr = c.stderr.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                    seen.lock().unwrap().push(l);
                }
            })
        };
        wait_for("the node to say it is ready", Duration::from_secs(60), || seen.lock().unwrap().iter().any(|l| l.contains("node ready")));
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        assert!(c.wait().unwrap().success());
        reader.join().unwrap();
        let lines = seen.lock().unwrap().clone();
        assert!(!lines.is_empty(), "{format}: no log");
        for l in &lines {
            assert!(!l.contains('\u{1b}'), "{format}: colour codes in a log that is not a terminal: {l:?}");
            assert!(check(l), "{format}: {l}");
        }
    }
}

/// A CA with a certificate for `node`, in `dir`.
fn pki(dir: &Path, node: &str) -> PathBuf {
    let ca = dir.join("ca");
    huijiao::pki::init(&ca).unwrap();
    huijiao::pki::issue(&ca, node, dir, 825).unwrap();
    ca
}

fn config_check(cfg: &Path) -> (i32, String) {
    let out = Command::new(bin()).args(["config", "check", "--config"]).arg(cfg).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn config_check_passes_every_example_and_names_each_kind_of_mistake() {
    let dir = tempfile::tempdir().unwrap();
    for (example, node) in [("county", "420102"), ("prefecture", "420100"), ("province", "420000"), ("national", "000000")] {
        let d = dir.path().join(example);
        std::fs::create_dir_all(&d).unwrap();
        let ca = pki(&d, node);
        let token = d.join("api-token");
        std::fs::write(&token, "example-token-0123456789\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The example as it ships, with its paths moved into the scratch folder.
        let text = std::fs::read_to_string(repo().join(format!("config/{example}.toml")))
            .unwrap()
            .replace("/etc/huijiao/ca.crt", &ca.join("ca.crt").display().to_string())
            .replace("/etc/huijiao/crl.pem", &ca.join("crl.pem").display().to_string())
            .replace("/etc/huijiao/", &format!("{}/", d.display()))
            .replace("/var/lib/huijiao", &d.join("data").display().to_string())
            .replace("/srv/huijiao", &d.join("srv").display().to_string())
            .replace("/srv/", &format!("{}/srv/", d.display()));
        let path = d.join("node.toml");
        std::fs::write(&path, text).unwrap();
        let (code, out) = config_check(&path);
        assert_eq!(code, 0, "{example}:\n{out}");
        assert!(out.contains("config OK"), "{example}:\n{out}");
    }
    // One broken config per kind of mistake, each named.
    let d = dir.path().join("broken");
    std::fs::create_dir_all(&d).unwrap();
    let ca = pki(&d, "420102");
    let base = |extra: &str| {
        format!(
            "node_id = \"420102\"\ndata_dir = \"{data}\"\n{extra}\n[parent]\naddress = \"127.0.0.1:7443\"\nnode_id = \"420100\"\n\n[tls]\nca = \"{ca}/ca.crt\"\ncert = \"{d}/420102.crt\"\nkey = \"{d}/420102.key\"\ncrl = \"{ca}/crl.pem\"\n",
            data = d.join("data").display(),
            ca = ca.display(),
            d = d.display()
        )
    };
    let path = d.join("node.toml");
    let check = |text: String, want: &str| {
        std::fs::write(&path, text).unwrap();
        let (code, out) = config_check(&path);
        assert_eq!(code, 1, "expected a failure naming `{want}`:\n{out}");
        assert!(out.contains(want), "expected `{want}` in:\n{out}");
    };
    std::fs::write(&path, base("")).unwrap();
    assert_eq!(config_check(&path).0, 0, "{}", config_check(&path).1);
    check(base("inbox_path = \"x\""), "unknown field `inbox_path`");
    check(base("").replace("node_id = \"420102\"", "node_id = \"429999\""), "node_id");
    check(base("").replace("[parent]", "[parent_]"), "unknown field `parent_`");
    check(base("").replace("address = \"127.0.0.1:7443\"", "address = \"nowhere\""), "parent.address");
    check(base("log = \"loud\""), "key `log`");
    // Online registration needs the API, a name, and not the national node.
    check(base("[registration]\noffice = \"江岸区科技局\""), "needs `[http]`");
    check(base("[http]\naddress = \"127.0.0.1:0\"\n[registration]\noffice = \"\""), "registration.office");
    check(base("[http]\naddress = \"127.0.0.1:0\"\npublic_url = \"kjcg\""), "http.public_url");
    // A key others can read.
    std::fs::set_permissions(d.join("420102.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    check(base(""), "readable by group or others");
    std::fs::set_permissions(d.join("420102.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // A certificate for another node.
    let other = d.join("other");
    huijiao::pki::issue(&ca, "420103", &other, 825).unwrap();
    check(
        base("")
            .replace(&format!("{}/420102.crt", d.display()), &other.join("420103.crt").display().to_string())
            .replace(&format!("{}/420102.key", d.display()), &other.join("420103.key").display().to_string()),
        "names node 420103",
    );
    // A key of another issue beside the certificate.
    let again = d.join("again");
    huijiao::pki::issue(&ca, "420102", &again, 825).unwrap();
    check(
        base("").replace(&format!("{}/420102.key", d.display()), &again.join("420102.key").display().to_string()),
        "does not belong to the certificate",
    );
    // An expired certificate.
    let expired = d.join("expired");
    let now = huijiao::clock::now_ms() / 1000;
    huijiao::pki::issue_between(&ca, "420102", &expired, now - 90 * 86_400, now - 86_400).unwrap();
    check(base("").replace(&format!("{}/420102.", d.display()), &format!("{}/420102.", expired.display())), "expired");
    // A certificate from another federation's CA.
    let foreign = d.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    pki(&foreign, "420102");
    check(base("").replace(&format!("{}/420102.", d.display()), &format!("{}/420102.", foreign.display())), "not signed by the CA");
    // A revoked certificate.
    huijiao::pki::revoke(&ca, huijiao::pki::RevokeTarget::Node("420102".into())).unwrap();
    check(base(""), "is revoked");
    // A token file others can read.
    let token = d.join("token");
    std::fs::write(&token, "a-token-of-sixteen-or-more\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    huijiao::pki::issue(&ca, "420102", &d, 825).unwrap();
    check(base(&format!("[http]\naddress = \"127.0.0.1:0\"\ntoken_file = \"{}\"", token.display())), "http.token_file");
}

#[test]
fn metrics_parse_as_prometheus_text_and_healthz_answers() {
    let mut node = Node::new("420102");
    let mut cfg = std::fs::read_to_string(&node.config).unwrap();
    cfg = cfg.replace("[inbox]", "[metrics]\naddress = \"127.0.0.1:0\"\n\n[inbox]");
    std::fs::write(&node.config, cfg).unwrap();
    node.start();
    let f = node.dir.path().join("data/metrics-address");
    wait_for("the metrics address", Duration::from_secs(60), || f.exists());
    let addr = std::fs::read_to_string(&f).unwrap();
    node.drop_file("a.csv", &std::fs::read(common::samples().join("utf8-zh.csv")).unwrap());
    let report = node.wait_handled("a.csv", 1);
    let scrape_now = || {
        let r = common::http::get(&addr, "/metrics", &[]);
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().contains("openmetrics-text"));
        let lines: Vec<String> = r.text().lines().map(str::to_string).collect();
        prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).expect("Prometheus text")
    };
    // The counters are bumped when the file's handling returns, a moment after its
    // report appears: wait for the file to be counted.
    let mut scrape = scrape_now();
    wait_for("the file counted in /metrics", Duration::from_secs(30), || {
        scrape = scrape_now();
        scrape.samples.iter().any(|s| s.metric == "huijiao_files_total")
    });
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no sample {name} {label:?} in {:?}", scrape.samples.iter().map(|s| &s.metric).collect::<Vec<_>>()))
    };
    assert_eq!(value("huijiao_records", None), report["accepted"].as_f64().unwrap());
    assert_eq!(value("huijiao_rows_total", Some(("outcome", "accepted"))), report["accepted"].as_f64().unwrap());
    assert_eq!(value("huijiao_rows_total", Some(("outcome", "rejected"))), report["rejected"].as_f64().unwrap());
    assert_eq!(value("huijiao_files_total", Some(("outcome", "with_rejected_rows"))), 1.0);
    let code = report["errors"][0]["code"].as_str().unwrap();
    assert!(value("huijiao_row_errors_total", Some(("code", code))) >= 1.0);
    assert!(value("huijiao_store_bytes", None) > 0.0);
    let h = common::http::get(&addr, "/healthz", &[]);
    assert_eq!((h.status, h.text().trim()), (200, "ok"));
    node.stop();
}

#[test]
fn backup_while_running_and_restore() {
    let mut node = Node::new("420102");
    node.start();
    node.drop_file("a.csv", &std::fs::read(common::samples().join("utf8-zh.csv")).unwrap());
    node.wait_handled("a.csv", 1);
    let before = node.query(&[]);
    let backup = node.dir.path().join("backup.db");
    let out = node.cli(&["backup", "--config", node.config.to_str().unwrap(), "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    // Restoring needs the daemon stopped.
    let refused = node.cli(&["restore", "--config", node.config.to_str().unwrap(), "--from", backup.to_str().unwrap()]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("stop it first"));
    node.drop_file("b.csv", &std::fs::read(common::samples().join("excel-gbk.csv")).unwrap());
    node.wait_handled("b.csv", 1);
    node.stop();
    let out = node.cli(&["restore", "--config", node.config.to_str().unwrap(), "--from", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(node.query(&[]), before, "the store is the backup's");
    // The catalogue notices the store it indexed was replaced and rebuilds.
    let count = node.cli(&["query", "--config", node.config.to_str().unwrap(), "--operator", "--count"]);
    assert!(count.status.success(), "{}", String::from_utf8_lossy(&count.stderr));
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), before.len().to_string());
}

#[test]
fn clerks_can_read_the_verdicts_the_node_writes() {
    // The unit's UMask=0027 and set-group-ID folders of huijiao.tmpfiles, reproduced.
    let node = Node::new("420102");
    for d in ["processed", "rejected"] {
        let p = node.dir.path().join(d);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o2750)).unwrap();
    }
    let log = std::fs::File::create(node.dir.path().join("node.log")).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("umask 0027 && exec {} run --config {}", bin(), node.config.display()))
        .stderr(log)
        .spawn()
        .unwrap();
    node.drop_file("a.csv", &std::fs::read(common::samples().join("utf8-zh.csv")).unwrap());
    node.wait_handled("a.csv", 1);
    let mut seen = 0;
    for top in ["processed", "rejected"] {
        for day in std::fs::read_dir(node.dir.path().join(top)).unwrap().flatten() {
            let m = std::fs::metadata(day.path()).unwrap();
            assert_eq!(m.permissions().mode() & 0o2070, 0o2050, "{}: the day folder is the clerks' to read", day.path().display());
            for f in std::fs::read_dir(day.path()).unwrap().flatten() {
                // The clerk's own file keeps its owner's mode; the node's are checked.
                let name = f.file_name().to_string_lossy().to_string();
                if !(name.ends_with(".report.json") || name.ends_with(".rejected.csv")) {
                    continue;
                }
                let mode = std::fs::metadata(f.path()).unwrap().permissions().mode();
                assert_eq!(mode & 0o040, 0o040, "{} is not group-readable ({mode:o})", f.path().display());
                assert_eq!(mode & 0o007, 0, "{} is readable by others ({mode:o})", f.path().display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 2, "a report and a rejected-rows file at least");
    // The store stays the service's own.
    let db = std::fs::metadata(node.dir.path().join("data/huijiao.db")).unwrap().permissions().mode();
    assert_eq!(db & 0o077, 0, "the store is private ({db:o})");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}

/// Runs `huijiao args…` as the unprivileged user `nobody`, as a service user would.
fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(bin())
        .args(args)
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn a_restore_run_as_root_leaves_the_store_to_the_service_user() {
    use std::os::unix::fs::MetadataExt;
    assert!(rustix::process::geteuid().is_root(), "this test runs `restore` as root and the node as nobody (it runs as root in CI)");
    let mut node = Node::new("420102");
    node.start();
    node.drop_file("a.csv", &std::fs::read(common::samples().join("utf8-zh.csv")).unwrap());
    node.wait_handled("a.csv", 1);
    node.stop();
    // The node's folder as the service user (nobody here) owns it.
    std::fs::set_permissions(node.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let chown = Command::new("chown").args(["-R", "nobody:nogroup"]).arg(node.dir.path()).status().unwrap();
    assert!(chown.success());
    let cfg = node.config.to_str().unwrap().to_string();
    let backup = node.dir.path().join("backup.db");
    let out = node.cli(&["backup", "--config", &cfg, "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The operator restores as root; the store stays the service user's.
    let out = node.cli(&["restore", "--config", &cfg, "--from", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let db = node.dir.path().join("data").join(huijiao::store::DB_FILE);
    let nobody = std::fs::metadata(node.dir.path().join("data")).unwrap().uid();
    assert_eq!(std::fs::metadata(&db).unwrap().uid(), nobody, "the restored store belongs to the data folder's owner");
    let check = as_nobody(&["config", "check", "--config", &cfg]);
    assert!(check.status.success(), "{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let count = as_nobody(&["query", "--config", &cfg, "--count"]);
    assert!(count.status.success(), "the service user reads its store: {}", String::from_utf8_lossy(&count.stderr));
    // A store left to root is named by `config check` run as the service user.
    std::os::unix::fs::chown(&db, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = as_nobody(&["config", "check", "--config", &cfg]);
    let text = String::from_utf8_lossy(&check.stdout).to_string() + &String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success() && text.contains("cannot be opened for writing"), "{text}");
}
