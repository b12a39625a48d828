//! Keeps ARCHITECTURE.md true, in the manner of rust-analyzer's tidy tests: every
//! module on disk is in its code map, every path the map names exists, and the
//! invariants a text search can check hold.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `.rs` files under `dir`, as paths relative to it.
fn rust_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// Every `code span` of the document.
fn code_spans(doc: &str) -> Vec<String> {
    doc.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// The source lines that are not comments.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|l| {
        let t = l.trim_start();
        !(t.starts_with("//") || t.starts_with("*"))
    })
}

#[test]
fn every_module_is_in_the_code_map_and_every_path_it_names_exists() {
    let root = root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    // The entry points and the code map: from "## Entry points" to the next section after the map.
    let start = doc.find("## Entry points").expect("an entry points section");
    let map = doc.find("## Code map").expect("a code map");
    let end = doc[map + 3..].find("\n## ").map_or(doc.len(), |i| map + 3 + i);
    let spans = code_spans(&doc[start..end]);
    let mut missing = Vec::new();
    for (krate, src) in
        [("protocol", "protocol/src"), ("node", "node/src"), ("integration", "integration/src"), ("kit", "integration/kit/src")]
    {
        for file in rust_files(&root.join(src)) {
            // A folder module is named by its folder; its mod.rs by `folder/mod.rs` or the folder.
            let named = spans.iter().any(|s| {
                s == &file
                    || s.ends_with(&format!("/{file}"))
                    || (file.ends_with("/mod.rs") && s == &file.replace("mod.rs", ""))
                    || (krate == "integration" && s == &format!("src/{file}"))
                    || (krate == "kit" && s == &format!("kit/src/{file}"))
            });
            if !named {
                missing.push(format!("{src}/{file}"));
            }
        }
    }
    assert!(missing.is_empty(), "modules missing from ARCHITECTURE.md's code map: {missing:#?}");

    // Paths the document names (a span with a slash ending in .rs, or a folder of a crate).
    let bases =
        [root.clone(), root.join("protocol/src"), root.join("node/src"), root.join("integration"), root.join("integration/kit/src")];
    let mut dangling = Vec::new();
    for s in &spans {
        let looks_like_path =
            !s.contains(' ') && (s.ends_with(".rs") || (s.ends_with('/') && s.len() > 1 && !s.starts_with('/'))) && !s.contains('*');
        if looks_like_path && !bases.iter().any(|b| b.join(s).exists()) {
            dangling.push(s.clone());
        }
    }
    assert!(dangling.is_empty(), "ARCHITECTURE.md names paths that do not exist: {dangling:#?}");
}

#[test]
fn only_the_store_touches_sqlite_and_the_protocol_does_no_io() {
    let root = root();
    let mut offenders = Vec::new();
    for file in rust_files(&root.join("node/src")) {
        if file.starts_with("store/") {
            continue;
        }
        let text = std::fs::read_to_string(root.join("node/src").join(&file)).unwrap();
        if code_lines(&text).any(|l| l.contains("rusqlite")) {
            offenders.push(format!("node/src/{file}: rusqlite outside store/"));
        }
    }
    for file in rust_files(&root.join("protocol/src")) {
        let text = std::fs::read_to_string(root.join("protocol/src").join(&file)).unwrap();
        for io in ["std::fs", "std::net", "std::thread", "tokio", "quinn", "rusqlite", "SystemTime", "Instant::now", "std::env"] {
            if code_lines(&text).any(|l| l.contains(io)) {
                offenders.push(format!("protocol/src/{file}: {io}"));
            }
        }
    }
    for (src, file) in rust_files(&root.join("node/src"))
        .into_iter()
        .map(|f| ("node/src", f))
        .chain(rust_files(&root.join("protocol/src")).into_iter().map(|f| ("protocol/src", f)))
    {
        let text = std::fs::read_to_string(root.join(src).join(&file)).unwrap();
        if code_lines(&text).any(|l| l.contains("unsafe ") || l.contains("unsafe{")) {
            offenders.push(format!("{src}/{file}: unsafe"));
        }
    }
    // bincode only in the wire module.
    for (src, file) in rust_files(&root.join("node/src"))
        .into_iter()
        .map(|f| ("node/src", f))
        .chain(rust_files(&root.join("protocol/src")).into_iter().map(|f| ("protocol/src", f)))
    {
        let text = std::fs::read_to_string(root.join(src).join(&file)).unwrap();
        if (src, file.as_str()) != ("protocol/src", "wire.rs") && code_lines(&text).any(|l| l.contains("bincode::")) {
            offenders.push(format!("{src}/{file}: bincode outside protocol/src/wire.rs"));
        }
    }
    assert!(offenders.is_empty(), "architecture invariants broken: {offenders:#?}");
}

/// The daemon library holds only what a node runs: the test kit is linked by the
/// binary (`main.rs`, `cli/`) alone, and no file of the library names it.
#[test]
fn the_daemon_library_does_not_use_the_test_kit() {
    let root = root();
    let mut offenders = Vec::new();
    for file in rust_files(&root.join("node/src")) {
        // The binary, and the test modules (`tests.rs`, `*_tests.rs`, only built for tests).
        if file == "main.rs" || file.starts_with("cli/") || file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(root.join("node/src").join(&file)).unwrap();
        // Unit tests may use the kit's generators and writers.
        let product = text.split("#[cfg(test)]").next().unwrap_or_default();
        if code_lines(product).any(|l| l.contains("huijiao_kit")) {
            offenders.push(format!("node/src/{file}"));
        }
    }
    assert!(offenders.is_empty(), "the daemon library uses the test kit: {offenders:#?}");
    // And the kit does not link the daemon.
    let kit = std::fs::read_to_string(root.join("integration/kit/Cargo.toml")).unwrap();
    assert!(!kit.lines().any(|l| l.trim_start().starts_with("huijiao.") || l.trim_start().starts_with("huijiao =")), "{kit}");
}

/// The kit repeats the names of the files a running node writes (it does not link
/// the daemon); they must be the daemon's.
#[test]
fn the_kit_names_the_daemons_files_as_the_daemon_does() {
    assert_eq!(huijiao_kit::fleet::LISTEN_ADDRESS_FILE, huijiao::daemon::LISTEN_ADDRESS_FILE);
    assert_eq!(huijiao_kit::fleet::HTTP_ADDRESS_FILE, huijiao::http::HTTP_ADDRESS_FILE);
    assert_eq!(huijiao_kit::fleet::DB_FILE, huijiao::store::DB_FILE);
}
