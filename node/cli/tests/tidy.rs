//! Keeps ARCHITECTURE.md true, in the manner of rust-analyzer's tidy tests: every
//! module on disk is in its code map, every path the map names exists, and the
//! invariants a text search can check hold.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
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
    for (krate, src) in [
        ("protocol", "protocol/src"),
        ("node", "node/src"),
        ("cli", "node/cli/src"),
        ("integration", "integration/src"),
        ("kit", "integration/kit/src"),
    ] {
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

/// The daemon library holds only what a node runs: no library manifest names the test
/// kit among what it links (the library's unit tests may, as a dev-dependency: what
/// they use cannot compile into the product), and the kit does not link the daemon.
/// The binary (`node/cli`) links both, for `huijiao demo`.
#[test]
fn no_library_manifest_links_the_test_kit() {
    let root = root();
    let linked = |manifest: &str| -> Vec<String> {
        let text = std::fs::read_to_string(root.join(manifest)).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        doc.get("dependencies").and_then(|d| d.as_table()).map(|d| d.keys().cloned().collect()).unwrap_or_default()
    };
    for lib in ["node/Cargo.toml", "protocol/Cargo.toml"] {
        assert!(!linked(lib).iter().any(|d| d == "huijiao-kit"), "{lib} links the test kit");
    }
    let kit = linked("integration/kit/Cargo.toml");
    assert!(!kit.iter().any(|d| d == "huijiao" || d == "huijiao-node"), "the kit links the daemon: {kit:?}");
    assert!(linked("node/cli/Cargo.toml").iter().any(|d| d == "huijiao-kit"), "the binary is where the demo's kit is linked");
}

/// The kit repeats the names of the files a running node writes (it does not link
/// the daemon); they must be the daemon's.
#[test]
fn the_kit_names_the_daemons_files_as_the_daemon_does() {
    assert_eq!(huijiao_kit::fleet::LISTEN_ADDRESS_FILE, huijiao::daemon::LISTEN_ADDRESS_FILE);
    assert_eq!(huijiao_kit::fleet::HTTP_ADDRESS_FILE, huijiao::http::HTTP_ADDRESS_FILE);
    assert_eq!(huijiao_kit::fleet::DB_FILE, huijiao::store::DB_FILE);
}

/// The module graph of one crate, file by file: an edge from a file to each file whose
/// items it names (`crate::a::b`, `super::a`, a `use crate::{a, b::c}` group) and to
/// each module it declares. A file naming its own ancestor (a room using its folder's
/// front) is no edge: a folder is one room to the rest of the crate.
fn module_graph(src: &Path) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let files = rust_files(src);
    let module_of = |f: &str| -> Vec<String> {
        let mut parts: Vec<String> = f.trim_end_matches(".rs").split('/').map(str::to_string).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            parts.pop();
        }
        parts
    };
    let resolve = |segs: &[String]| -> Option<String> {
        (1..=segs.len()).rev().find_map(|n| {
            let base = segs[..n].join("/");
            [format!("{base}.rs"), format!("{base}/mod.rs")].into_iter().find(|c| files.contains(c))
        })
    };
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut graph = std::collections::BTreeMap::new();
    for f in &files {
        if f.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(src.join(f)).unwrap();
        let product = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code_lines(product).collect::<Vec<_>>().join("\n");
        let me = module_of(f);
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (anchor, base) in [("crate::", Vec::new()), ("super::", me[..me.len().saturating_sub(1)].to_vec())] {
            for (i, _) in code.match_indices(anchor) {
                if code[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let rest = &code[i + anchor.len()..];
                let mut segs = base.clone();
                let mut tail = rest;
                loop {
                    let id = ident(tail);
                    if id.is_empty() {
                        break;
                    }
                    tail = &tail[id.len()..];
                    segs.push(id);
                    match tail.strip_prefix("::") {
                        Some(t) => tail = t,
                        None => break,
                    }
                }
                if let Some(group) = tail.strip_prefix('{') {
                    for item in group.split('}').next().unwrap_or_default().split(',') {
                        let first = ident(item.trim());
                        if !first.is_empty() {
                            paths.push(segs.iter().cloned().chain([first]).collect());
                        }
                    }
                }
                paths.push(segs);
            }
        }
        for line in code.lines() {
            let t = line.trim_start().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
            if let Some(name) = t.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                paths.push(me.iter().cloned().chain([name.to_string()]).collect());
            }
        }
        let mut edges = std::collections::BTreeSet::new();
        for p in paths {
            if let Some(target) = resolve(&p).filter(|t| t != f && !t.ends_with("tests.rs")) {
                let tm = module_of(&target);
                if !(me.len() >= tm.len() && me[..tm.len()] == tm[..]) {
                    edges.insert(target);
                }
            }
        }
        graph.insert(f.clone(), edges);
    }
    graph
}

/// The strongly connected components of more than one file (Tarjan's algorithm).
fn cycles(graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        index: std::collections::HashMap<&'a str, (usize, usize)>,
        stack: Vec<&'a str>,
        on_stack: std::collections::HashSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, (self.next, self.next));
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.index[v].1.min(self.index[w.as_str()].1);
                    self.index.get_mut(v).unwrap().1 = low;
                } else if self.on_stack.contains(w.as_str()) {
                    let low = self.index[v].1.min(self.index[w.as_str()].0);
                    self.index.get_mut(v).unwrap().1 = low;
                }
            }
            if self.index[v].0 == self.index[v].1 {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: Default::default(), stack: Vec::new(), on_stack: Default::default(), next: 0, found: Vec::new() };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_module_imports_its_way_back_to_itself() {
    let root = root();
    let mut found = Vec::new();
    for src in ["protocol/src", "node/src", "node/cli/src", "integration/src", "integration/kit/src"] {
        for c in cycles(&module_graph(&root.join(src))) {
            found.push(format!("{src}: {}", c.join(" → ")));
        }
    }
    assert!(found.is_empty(), "import cycles (move what both sides need where both can reach it): {found:#?}");
    // The check sees a cycle when there is one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::B;\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "pub fn f() { crate::c::g() }\n").unwrap();
    std::fs::write(dir.path().join("c.rs"), "use crate::{a::A, d};\n").unwrap();
    std::fs::write(dir.path().join("d.rs"), "// crate::a::A in a comment is no edge\n").unwrap();
    assert_eq!(cycles(&module_graph(dir.path())), vec![vec!["a.rs".to_string(), "b.rs".into(), "c.rs".into()]]);
}

/// `text` with the contents of string and character literals blanked, so braces and
/// quotes in them do not count.
fn blank_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_str = false;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            match c {
                '\\' => {
                    // An escape; a line continuation keeps its new line (line numbers).
                    out.push(' ');
                    out.push(if chars.get(i + 1) == Some(&'\n') { '\n' } else { ' ' });
                    i += 2;
                    continue;
                }
                '"' => {
                    in_str = false;
                    out.push('"');
                }
                '\n' => out.push('\n'),
                _ => out.push(' '),
            }
        } else if c == '"' {
            in_str = true;
            out.push('"');
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'); a lifetime has no closing quote.
            let end = if chars.get(i + 1) == Some(&'\\') {
                (i + 3..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else {
                (chars.get(i + 2) == Some(&'\'')).then_some(i + 2)
            };
            match end {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                    continue;
                }
                None => out.push(c),
            }
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// The text from `open` (an opening bracket) to its match, exclusive.
fn bracketed(text: &str, open: usize) -> &str {
    let (o, c) = match text.as_bytes()[open] {
        b'{' => (b'{', b'}'),
        _ => (b'(', b')'),
    };
    let mut depth = 0;
    for (i, b) in text.bytes().enumerate().skip(open) {
        if b == o {
            depth += 1;
        } else if b == c {
            depth -= 1;
            if depth == 0 {
                return &text[open + 1..i];
            }
        }
    }
    &text[open + 1..]
}

/// The code of async fns and blocks that runs on the async workers: each body with what
/// it hands to the blocking pool (`spawn_blocking(…)`, `Store::read(…)`) or a thread
/// taken out.
fn async_code(text: &str) -> Vec<String> {
    let text = blank_literals(text);
    let mut out = Vec::new();
    for start in ["async fn ", "async move {", "async {"] {
        for (i, _) in text.match_indices(start) {
            let Some(open) = text[i..].find('{').map(|o| i + o) else { continue };
            let mut body = bracketed(&text, open).to_string();
            for handed in ["spawn_blocking(", ".read(", ".read_with(", "thread::spawn(", "Builder::new().name("] {
                while let Some(at) = body.find(handed) {
                    let paren = at + handed.len() - 1;
                    let inner = bracketed(&body, paren).len();
                    body.replace_range(at..paren + inner + 2.min(body.len() - paren - inner), "");
                }
            }
            out.push(body);
        }
    }
    out
}

/// SQLite is synchronous: an async worker that waits on it stalls every task sharing
/// the worker. Async code opens no connection; it reads through `Store::read` (or
/// `spawn_blocking`) and queries the catalogue through `Api::query`.
#[test]
fn no_sqlite_connection_is_opened_on_an_async_worker() {
    let root = root();
    let mut offenders = Vec::new();
    for file in rust_files(&root.join("node/src")) {
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(root.join("node/src").join(&file)).unwrap();
        let product = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code_lines(product).collect::<Vec<_>>().join("\n");
        for body in async_code(&code) {
            for opens in [".reader()", "Reader::open(", "Catalogue::open(", "Connection::open", "open_reader_connection("] {
                if body.contains(opens) {
                    offenders.push(format!("node/src/{file}: {opens} in async code"));
                }
            }
        }
    }
    offenders.dedup();
    assert!(offenders.is_empty(), "SQLite on an async worker: {offenders:#?}");
    // The check sees one when there is one.
    let sample = "async fn f(s: &Store) { let r = s.reader()?; let n = s.read(|r| r.count()).await?; }\n\
                  async fn g(s: &Store) { tokio::task::spawn_blocking(move || s.reader()).await; }";
    let bodies = async_code(sample);
    assert!(bodies[0].contains(".reader()") && !bodies[0].contains("r.count()"), "{bodies:?}");
    assert!(!bodies[1].contains(".reader()"), "{bodies:?}");
}

/// Where a line's `//` comment starts, outside any string on that line (`"http://…"`
/// is code).
fn comment_start(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && b.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Each `fn` of `text` with its first line (1-based) and its length in lines.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let code: String = text
        .lines()
        .map(|l| match comment_start(l) {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let code = blank_literals(&code);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("fn ").map(|i| from + i) {
        from = at + 3;
        if code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = code[at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let (Some(open), semi) = (code[at..].find('{').map(|i| at + i), code[at..].find(';').map(|i| at + i)) else { continue };
        if name.is_empty() || semi.is_some_and(|s| s < open) {
            continue;
        }
        let body = bracketed(&code, open);
        let first = code[..at].matches('\n').count() + 1;
        let last = code[..open + body.len() + 1].matches('\n').count() + 1;
        out.push((name, first, last - first));
    }
    out
}

/// A room a newcomer can hold in their head: no function over ~120 lines unless the
/// comment above it says why it must be one piece (`One piece: …`).
#[test]
fn a_long_function_says_why_it_is_one_piece() {
    const LONG: usize = 120;
    let root = root();
    let mut offenders = Vec::new();
    for src in ["protocol/src", "node/src", "node/cli/src"] {
        for file in rust_files(&root.join(src)) {
            if file.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(root.join(src).join(&file)).unwrap();
            let product = text.split("#[cfg(test)]").next().unwrap_or_default();
            let lines: Vec<&str> = product.lines().collect();
            for (name, first, len) in functions(product) {
                if len <= LONG {
                    continue;
                }
                let above = lines[..first - 1].iter().rev().take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("///") || t.starts_with("#[") || t.starts_with("//")
                });
                if !above.into_iter().any(|l| l.contains("One piece:")) {
                    offenders.push(format!("{src}/{file}:{first} fn {name}: {len} lines"));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "split these, or say above each why it must be one piece (`/// One piece: …`): {offenders:#?}");
    let long = format!("/// Does a lot.\nfn big() {{\n{}}}\nfn small() {{ let s = \"{{\"; }}\n", "    step();\n".repeat(LONG + 1));
    assert_eq!(functions(&long).iter().map(|(n, _, l)| (n.as_str(), *l)).collect::<Vec<_>>(), [("big", LONG + 2), ("small", 0)]);
}

/// No room over ~700 lines without a reason: a longer file says in its module comment
/// why it is one room (`One room: …`).
#[test]
fn a_long_file_says_why_it_is_one_room() {
    const LONG: usize = 700;
    let root = root();
    let mut offenders = Vec::new();
    for src in ["protocol/src", "node/src", "node/cli/src"] {
        for file in rust_files(&root.join(src)) {
            if file.ends_with("tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(root.join(src).join(&file)).unwrap();
            let product = text.split("#[cfg(test)]").next().unwrap_or_default();
            let n = product.lines().count();
            let header: Vec<&str> = text.lines().take_while(|l| l.starts_with("//!")).collect();
            if n > LONG && !header.iter().any(|l| l.contains("One room:")) {
                offenders.push(format!("{src}/{file}: {n} lines"));
            }
        }
    }
    assert!(offenders.is_empty(), "split these, or say in the module comment why each is one room (`//! One room: …`): {offenders:#?}");
}
