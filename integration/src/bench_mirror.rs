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
    let (t, own, server) = (Instant::now(), cpu::this_process()?, cpu::cluster(&pg)?);
    huijiao::mirror::run(&cfg, &opts, tokio_util::sync::CancellationToken::new()).await?;
    let secs = t.elapsed().as_secs_f64();
    // Where the processor time went, per record: the mirror's process and the
    // server's (every process of the cluster), and what the machine's cores allow at
    // that cost, both sides busy all the time.
    let own = (cpu::this_process()? - own) / f64::from(n) * 1e6;
    let server = (cpu::settled(&pg, server.1)? - server.0) / f64::from(n) * 1e6;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let ceiling = cpu::most(cores, own + server);
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
    let (t, before) = (Instant::now(), cpu::cluster(&pg)?);
    pg.psql(&format!("COPY raw FROM '{}' (FORMAT binary)", file.display()))?;
    let raw = f64::from(n) / t.elapsed().as_secs_f64();
    let raw_server = (cpu::settled(&pg, before.1)? - before.0) / f64::from(n) * 1e6;
    Ok(vec![
        Row::new("mirror", &format!("catch-up of {n} records into PostgreSQL (operator view)"), "≥ 50,000/s", rate, "records/s")
            .met(rate >= 50_000.0)
            .note(format!("{secs:.1} s; records upserted, {n} changes and the cursor, batches of {}", huijiao::mirror::BATCH)),
        Row::new("mirror", "baseline: raw server-side COPY of the same rows", "report", raw, "records/s")
            .note("no client, no upsert, no index, no history; binary; the same compression and storage"),
        Row::new("mirror", "mirror / raw COPY", "≥ 0.5", rate / raw, "ratio").met(rate / raw >= 0.5),
        Row::new("mirror", "processor time per record: the mirror's process", "report", own, "µs")
            .note("user + system, during the catch-up (reading the store, building the rows, sending them)"),
        Row::new("mirror", "processor time per record: PostgreSQL (all its processes)", "report", server, "µs")
            .note("user + system of the cluster's processes during the catch-up (backend, WAL writer, checkpointer…)"),
        Row::new("mirror", "the most these costs allow on this machine's cores", "report", ceiling, "records/s")
            .note(format!("{cores} cores ÷ (mirror + PostgreSQL time per record), both sides busy all the time")),
        Row::new("mirror", "processor time per record: PostgreSQL, for the raw COPY", "report", raw_server, "µs").note(format!(
            "the server's least cost for these rows; {cores} cores ÷ it = {:.0} records/s, the most any client could reach here",
            cpu::most(cores, raw_server)
        )),
    ])
}

/// Processor time (user + system, seconds) from `/proc`.
mod cpu {
    use huijiao_kit::postgres::Cluster;

    /// Records per second that `cores` cores allow at `us` µs of processor time per
    /// record (0 when a run was too short to measure any).
    pub fn most(cores: f64, us: f64) -> f64 {
        if us > 0.0 {
            cores * 1e6 / us
        } else {
            0.0
        }
    }

    /// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
    fn ticks() -> f64 {
        let out = std::process::Command::new("getconf").arg("CLK_TCK").output().ok();
        out.and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok()).filter(|t: &f64| *t > 0.0).unwrap_or(100.0)
    }

    /// A process's fields after its name, counted from field 3 of proc(5): state is
    /// [0], ppid [1], utime [11], stime [12], cutime [13], cstime [14].
    fn stat(pid: u32) -> Option<Vec<u64>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = text.rsplit_once(')')?.1;
        Some(after.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
    }

    pub fn this_process() -> anyhow::Result<f64> {
        let f = stat(std::process::id()).ok_or_else(|| anyhow::anyhow!("cannot read /proc/self/stat"))?;
        Ok((f[11] + f[12]) as f64 / ticks())
    }

    /// The cluster's processor time once the backends started since it had `children`
    /// processes have ended (a backend ends with its connection and is counted when
    /// the postmaster reaps it), or after 10 s regardless.
    pub fn settled(pg: &Cluster, children: usize) -> anyhow::Result<f64> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (secs, alive) = cluster(pg)?;
            if alive <= children || std::time::Instant::now() >= deadline {
                return Ok(secs);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The cluster's postmaster, its children alive and those it has reaped; and how
    /// many children are alive.
    pub fn cluster(pg: &Cluster) -> anyhow::Result<(f64, usize)> {
        let pidfile = std::fs::read_to_string(pg.dir().join("data/postmaster.pid"))?;
        let master: u32 = pidfile.lines().next().unwrap_or_default().trim().parse()?;
        let m = stat(master).ok_or_else(|| anyhow::anyhow!("no postmaster {master}"))?;
        let (mut total, mut alive) = (m[11] + m[12] + m[13] + m[14], 0);
        for e in std::fs::read_dir("/proc")?.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some(f) = stat(pid).filter(|f| f[1] == u64::from(master)) {
                total += f[11] + f[12];
                alive += 1;
            }
        }
        Ok((total as f64 / ticks(), alive))
    }
}
