//! `huijiao demo`: the demo itself is the test kit's (`huijiao_kit::demo`); this gives
//! it what it needs of the daemon — certificates and read access to each node's store.

use huijiao::store::Reader;
use huijiao_kit::audit::Holdings;
use huijiao_kit::demo::{Host, Options, StoreView};
use std::path::Path;

struct Daemon;

struct Store(Reader);

impl Host for Daemon {
    fn init_ca(&self, dir: &Path) -> anyhow::Result<()> {
        huijiao::pki::init(dir)
    }

    fn issue(&self, ca: &Path, node_id: &str, tls_dir: &Path, days: u32) -> anyhow::Result<()> {
        huijiao::pki::issue(ca, node_id, tls_dir, days).map(|_| ())
    }

    fn open_store(&self, db: &Path) -> Option<Box<dyn StoreView>> {
        Reader::open(db).ok().map(|r| Box::new(Store(r)) as Box<dyn StoreView>)
    }

    fn catalogue_count(&self, db: &Path) -> Option<u64> {
        use huijiao::store::catalogue::{Catalogue, Filters, GroupBy, View};
        let c = Catalogue::open(db.parent()?).ok()?;
        let groups = c.stats(GroupBy::Kind, None, &Filters::default(), View::Operator).ok()?;
        Some(groups.iter().map(|(_, n)| n).sum())
    }
}

impl StoreView for Store {
    fn record_count(&self) -> anyhow::Result<i64> {
        Ok(self.0.record_count()?)
    }

    fn holdings(&self) -> anyhow::Result<Holdings> {
        Ok(Holdings { records: self.0.record_states()?, duplicated: self.0.duplicate_changes()? })
    }

    fn arrival_times(&self) -> anyhow::Result<Vec<(String, i64, i64)>> {
        Ok(self.0.arrival_times()?)
    }
}

/// Runs the demo; its exit status.
pub fn run(opts: Options) -> anyhow::Result<i32> {
    huijiao_kit::demo::run(opts, &Daemon)
}
