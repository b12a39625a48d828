//! `mirror`: the PostgreSQL mirror catching up a store of 1,000,000 records (smoke:
//! 5,000) into a private cluster, against the baseline of the same run — a raw
//! server-side `COPY` of the very rows the mirror wrote, in the binary format it
//! sends, into a plain table of the same shape, compression and storage (no client,
//! no upsert, no index, no history).

use crate::bench::{preload_tagged, progress, records, Row, Size};
use huijiao_kit::postgres::Cluster;
use std::path::Path;
use std::time::Instant;

pub async fn mirror(size: Size, root: &Path) -> anyhow::Result<Vec<Row>> {
    let n: u32 = size.pick(1_000_000, 5_000);
    let dir = root.join("mirror-node");
    std::fs::create_dir_all(dir.join("data"))?;
    let db = dir.join("data").join(huijiao::store::DB_FILE);
    let chunk = 100_000u32;
    let mut done = 0;
    while done < n {
        let m = chunk.min(n - done);
        preload_tagged(&db, "420102", &records("420102", done, m, 31), &format!("m{done}"))?;
        done += m;
        progress("loading the store", u64::from(done), u64::from(n));
    }
    let config = dir.join("node.toml");
    std::fs::write(&config, "node_id = \"420102\"\ndata_dir = \"data\"\nstandalone = true\n[inbox]\npaths = [\"inbox\"]\n")?;
    std::fs::create_dir_all(dir.join("inbox"))?;
    let cfg = huijiao::config::Config::load(&config)?;
    let pg = Cluster::start()?;
    let opts = huijiao::mirror::Options { url: pg.url(), schema: "huijiao".into(), view: huijiao::mirror::View::Operator, once: true };
    let t = Instant::now();
    huijiao::mirror::run(&cfg, &opts, tokio_util::sync::CancellationToken::new()).await?;
    let secs = t.elapsed().as_secs_f64();
    let mirrored: u64 = pg.psql("SELECT count(*) FROM huijiao.records")?.trim().parse()?;
    anyhow::ensure!(mirrored == u64::from(n), "the mirror holds {mirrored} of {n}");
    let rate = f64::from(n) / secs;
    // The baseline: the same rows, COPY'd by the server from a file in the binary
    // format the mirror sends into a plain table stored as the mirror's is.
    let file = pg.dir().join("raw.copy");
    pg.psql(&format!("COPY huijiao.records TO '{}' (FORMAT binary)", file.display()))?;
    let options =
        pg.psql("SELECT coalesce(array_to_string(reloptions, ', '), '') FROM pg_class WHERE oid = 'huijiao.records'::regclass")?;
    let with = if options.trim().is_empty() { String::new() } else { format!(" WITH ({})", options.trim()) };
    pg.psql(&format!("CREATE TABLE raw (LIKE huijiao.records INCLUDING COMPRESSION INCLUDING STORAGE){with}"))?;
    // From a clean start, as the mirror had: nothing of its run left to write out.
    pg.psql("CHECKPOINT")?;
    let t = Instant::now();
    pg.psql(&format!("COPY raw FROM '{}' (FORMAT binary)", file.display()))?;
    let raw = f64::from(n) / t.elapsed().as_secs_f64();
    Ok(vec![
        Row::new("mirror", &format!("catch-up of {n} records into PostgreSQL (operator view)"), "≥ 50,000/s", rate, "records/s")
            .met(rate >= 50_000.0)
            .note(format!("{secs:.1} s; records upserted, {n} changes and the cursor, batches of {}", huijiao::mirror::BATCH)),
        Row::new("mirror", "baseline: raw server-side COPY of the same rows", "report", raw, "records/s")
            .note("no client, no upsert, no index, no history; binary; the same compression and storage"),
        Row::new("mirror", "mirror / raw COPY", "≥ 0.5", rate / raw, "ratio").met(rate / raw >= 0.5),
    ])
}
