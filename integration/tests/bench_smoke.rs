//! Every benchmark scenario runs, in its tiny smoke size: `all` and, named, the
//! catalogue that `all` leaves out. Nothing about speed is asserted here: the numbers
//! belong in BENCHMARKS.md. Each row is printed beside its last recorded value.

use std::process::Command;

#[test]
fn every_scenario_runs_in_smoke_size() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_bench")).args(["--smoke", "all", "catalogue", "--out"]).arg(out.path()).output().unwrap();
    assert!(run.status.success(), "bench failed:\n{}\n{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    let rows = results["results"].as_array().unwrap();
    for scenario in ["ingest", "sync", "catchup", "latency", "fanin", "idle", "hostile", "catalogue", "mirror"] {
        let mine: Vec<_> = rows.iter().filter(|r| r["scenario"] == scenario).collect();
        assert!(!mine.is_empty(), "no result for {scenario}");
        assert!(mine.iter().all(|r| r["measured"].as_f64().is_some_and(f64::is_finite)), "{scenario}: {mine:?}");
    }
    assert!(results["machine"]["cores"].as_u64().unwrap() >= 1);
    let table = std::fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(table.contains("| scenario | metric | goal | before | measured |"), "{table}");
    // Scenario by scenario, each row beside the last one BENCHMARKS.md records.
    let log = String::from_utf8_lossy(&run.stderr);
    assert!(log.contains("(before: "), "{log}");
}
