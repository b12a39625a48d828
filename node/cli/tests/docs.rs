//! Every command block a reader is meant to run (a fenced ```` ```sh ```` block in
//! README.md or docs/*.md) runs as written and succeeds, with the real binary: none can
//! drift from what the program does. Blocks that need systemd, root, the network or
//! placeholder paths are fenced ```` ```shell ```` and are not run; example output is
//! fenced ```` ```text ````/```` ```console ````.
//!
//! Each block runs in bash (`-e -o pipefail`) from a scratch folder that looks like a
//! checkout (`target/release/huijiao` is the binary under test, `testdata/` the
//! repository's), with `/tmp/hj` cleared first, as the blocks use it. A block that
//! reads the demo federation (`/tmp/hj/node-000000`) gets one started first with
//! `huijiao demo --keep --dir /tmp/hj`, as the README says.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The runnable blocks of a Markdown file, with the line each starts on.
fn sh_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some((i + 1, String::new())),
            (Some(_), "```") => out.push(current.take().expect("a block")),
            (Some((_, body)), l) => {
                body.push_str(l);
                body.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace").to_path_buf()
}

/// A folder that looks like a checkout for the blocks.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(common::bin(), dir.path().join("target/release/huijiao")).unwrap();
    std::os::unix::fs::symlink(repo().join("testdata"), dir.path().join("testdata")).unwrap();
    dir
}

/// Kills a process group by its leader's pid (bash's `kill 0` would take the test too).
fn kill_group(pid: u32, signal: &str) {
    let _ = Command::new("kill").args([signal, "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
}

/// The demo federation of the README, kept running in /tmp/hj until dropped.
struct Demo(std::process::Child);

impl Demo {
    fn start(cwd: &Path) -> Demo {
        let mut child = Command::new("target/release/huijiao")
            .args(["demo", "--keep", "--dir", "/tmp/hj", "--records", "2400"])
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("keeps running") {
                // Read the rest in the background: the demo must never write to a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return Demo(child);
            }
        }
        let status = child.wait();
        panic!("the demo ended before it was up ({status:?}):\n{seen}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Ctrl-C: the demo stops every node cleanly.
        kill_group(self.0.id(), "-INT");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        kill_group(self.0.id(), "-KILL");
        let _ = self.0.wait();
    }
}

/// Runs one block; panics with its output unless it succeeds.
fn run_block(cwd: &Path, file: &str, line: usize, body: &str) {
    // Output into files: a pipe nobody reads while waiting could fill and stall the block.
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", body])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the block left running (a daemon started with `&`).
    kill_group(pid, "-TERM");
    let _ = child.wait();
    let (stdout, stderr) = (std::fs::read_to_string(&out_path).unwrap(), std::fs::read_to_string(&err_path).unwrap());
    let what = format!("{file}:{line}\n{body}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    let status = status.unwrap_or_else(|| panic!("the block ran over 180 s: {what}"));
    assert!(status.success(), "the block failed ({status}): {what}");
    for bad in ["No such file", "command not found", "Not a directory", "cannot create", "error:"] {
        assert!(!stderr.contains(bad), "`{bad}` from the block: {what}");
    }
    assert!(!stdout.trim().is_empty(), "the block printed nothing: {what}");
}

#[test]
fn every_sh_block_of_the_docs_runs_as_written() {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let cwd = checkout();
    let mut ran = 0;
    for file in &files {
        let name = file.strip_prefix(repo()).unwrap().display().to_string();
        for (line, body) in sh_blocks(&std::fs::read_to_string(file).unwrap()) {
            let _ = std::fs::remove_dir_all("/tmp/hj");
            let _demo = body.contains("/tmp/hj/node-000000").then(|| Demo::start(cwd.path()));
            run_block(cwd.path(), &name, line, &body);
            ran += 1;
        }
    }
    let _ = std::fs::remove_dir_all("/tmp/hj");
    assert!(ran >= 3, "the README's quickstart, check and catalogue blocks: {ran} blocks ran");
}

#[test]
fn the_quickstart_block_is_found() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = sh_blocks(&readme);
    assert!(blocks.iter().any(|(_, b)| b.contains("$H run --config /tmp/hj/node.toml &")), "{blocks:?}");
}
