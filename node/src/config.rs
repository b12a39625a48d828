//! The node configuration file (TOML) and its validation.

use anyhow::{bail, Context};
use huijiao_protocol::RegionTable;
use std::borrow::Cow;
use std::path::Path;

/// The embedded GB/T 2260 table, or a newer one from `path`.
pub fn load_regions(path: Option<&Path>) -> anyhow::Result<Cow<'static, RegionTable>> {
    match path {
        None => Ok(Cow::Borrowed(RegionTable::embedded())),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read region table {}", p.display()))?;
            Ok(Cow::Owned(RegionTable::parse(&text).with_context(|| format!("invalid region table {}", p.display()))?))
        }
    }
}

/// A node id is `000000` or a code of the region table.
pub fn check_node_id(node: &str, regions: &RegionTable) -> anyhow::Result<()> {
    if !huijiao_protocol::regions::is_six_digits(node) {
        bail!("node id `{node}` is not a 6-digit region code");
    }
    if !regions.contains(node) {
        bail!("node id `{node}` is not in the GB/T 2260 table");
    }
    Ok(())
}
