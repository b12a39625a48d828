//! Every example configuration under `config/` parses and validates.

use std::path::Path;

#[test]
fn every_example_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let file: huijiao::config::ConfigFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            huijiao::config::Config::check_example(file).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "expected national, province, prefecture and county examples in {}", dir.display());
}
