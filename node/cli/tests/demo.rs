//! The demo federation, in a reduced size, passes its own check: twelve real daemons,
//! every file type, bad rows, online registration, two packages, audit at the national node.

use std::process::Command;

#[test]
fn the_demo_converges_and_passes_its_own_audit() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_huijiao"))
        .args(["demo", "--records", "1200", "--timeout-secs", "300", "--dir"])
        .arg(dir.path().join("fed"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("result: OK"), "{stdout}");
    assert!(stdout.contains("0 lost") && stdout.contains("0 duplicated"), "{stdout}");
    assert_eq!(stdout.matches("package published at the national node").count(), 2, "{stdout}");
    // Every node stopped: their logs end with a clean stop.
    for entry in std::fs::read_dir(dir.path().join("fed")).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("node-") {
            let log = std::fs::read_to_string(entry.path().join("node.log")).unwrap();
            assert!(log.contains("node stopped"), "{} did not stop cleanly:\n{log}", entry.path().display());
        }
    }
}
