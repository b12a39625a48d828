//! The configuration's checks: errors name the file and key; sections that need others.

use super::*;

#[test]
fn errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "node_id = \"420102\"\ndata_dir = \"d\"\n[inbox]\npath = [\"x\"]\n").unwrap();
    let e = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(e.contains("bad.toml") && e.contains("path") && e.contains("line 4"), "{e}");
    std::fs::write(&p, "node_id = \"420199\"\ndata_dir = \"d\"\n").unwrap();
    let e = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(e.contains("bad.toml") && e.contains("node_id"), "{e}");
}

#[test]
fn online_registration_is_for_offices_below_the_national_node() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.toml");
    let with = |node: &str, extra: &str| {
        std::fs::write(&p, format!("node_id = \"{node}\"\ndata_dir = \"d\"\nstandalone = true\n[http]\naddress = \"127.0.0.1:0\"\npublic_url = \"https://kjcg.example.gov.cn/\"\n{extra}")).unwrap();
        Config::load(&p)
    };
    let e = format!("{:#}", with("000000", "[registration]\noffice = \"科学技术部\"\n").unwrap_err());
    assert!(e.contains("[registration]") && e.contains("national"), "{e}");
    let c = with("420100", "[registration]\noffice = \" 武汉市科学技术局 \"\n").unwrap();
    assert_eq!(c.registration, Some(Registration { office: "武汉市科学技术局".into() }));
    assert_eq!(c.http.unwrap().public_url.as_deref(), Some("https://kjcg.example.gov.cn"), "no trailing slash");
    assert!(with("420100", "").unwrap().registration.is_none(), "off by default");
}

#[test]
fn oai_needs_http_a_domain_and_an_address() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.toml");
    let with = |http: bool, oai: &str| {
        let h = if http { "[http]\naddress = \"127.0.0.1:0\"\n" } else { "" };
        std::fs::write(&p, format!("node_id = \"000000\"\ndata_dir = \"d\"\nstandalone = true\n{h}[oai]\n{oai}")).unwrap();
        Config::load(&p).map_err(|e| format!("{e:#}"))
    };
    let ok = "repository_identifier = \"kjcg.example.gov.cn\"\nadmin_email = \"oai@example.gov.cn\"\n";
    assert!(with(false, ok).unwrap_err().contains("needs `[http]`"));
    assert!(with(true, "repository_identifier = \"kjcg\"\nadmin_email = \"a@b.cn\"\n").unwrap_err().contains("repository_identifier"));
    assert!(with(true, "repository_identifier = \"a.cn\"\nadmin_email = \"nobody\"\n").unwrap_err().contains("admin_email"));
    let c = with(true, ok).unwrap().oai.unwrap();
    assert_eq!((c.repository_identifier.as_str(), c.repository_name), ("kjcg.example.gov.cn", None));
}

#[test]
fn relative_paths_and_default_folders() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.toml");
    std::fs::write(&p, "node_id = \"420102\"\ndata_dir = \"data\"\n[inbox]\npaths = [\"drop/inbox\"]\nsettle_ms = 250\n").unwrap();
    let e = format!("{:#}", Config::load(&p).unwrap_err());
    assert!(e.contains("[parent]") && e.contains("420100"), "a county without a parent is refused: {e}");
    std::fs::write(
        &p,
        "node_id = \"420102\"\ndata_dir = \"data\"\nstandalone = true\n[inbox]\npaths = [\"drop/inbox\"]\nsettle_ms = 250\n",
    )
    .unwrap();
    let c = Config::load(&p).unwrap();
    assert_eq!(c.data_dir, dir.path().join("data"));
    assert_eq!(c.inboxes[0].path, dir.path().join("drop/inbox"));
    assert_eq!(c.inboxes[0].processed, dir.path().join("drop/processed"));
    assert_eq!(c.inboxes[0].rejected, dir.path().join("drop/rejected"));
    assert_eq!(c.settle, Duration::from_millis(250));
    assert_eq!(c.max_file_size, 256 * 1024 * 1024);
}

#[test]
fn address_blocks_match_their_bits() {
    let c = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(c.contains("10.200.1.2".parse().unwrap()) && !c.contains("11.0.0.1".parse().unwrap()));
    let one = Cidr::parse("127.0.0.1").unwrap();
    assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
    assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
    assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains("::1".parse().unwrap()));
    assert_eq!(Cidr::parse("10.0.0.0/33"), None);
    assert_eq!(Cidr::parse("proxy"), None);
}

#[test]
fn the_catalogue_follows_the_store_where_http_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.toml");
    let with = |extra: &str| {
        std::fs::write(&p, format!("node_id = \"420102\"\ndata_dir = \"d\"\nstandalone = true\n{extra}")).unwrap();
        Config::load(&p).map_err(|e| format!("{e:#}"))
    };
    assert!(!with("").unwrap().index, "nothing reads it: brought up to date when queried");
    assert!(with("[http]\naddress = \"127.0.0.1:0\"\n").unwrap().index, "served: kept following");
    assert!(with("[catalogue]\nindex = true\n").unwrap().index, "asked for");
    let e = with("[catalogue]\nindex = false\n[http]\naddress = \"127.0.0.1:0\"\n").unwrap_err();
    assert!(e.contains("index = true"), "{e}");
}
