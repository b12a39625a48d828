//! A private PostgreSQL cluster for tests and benchmarks: Debian's `postgresql`
//! binaries (`.ci/packages` installs them), `initdb` in a temporary folder, the server
//! on a free loopback port with trust authentication, stopped and removed on drop.
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres`
//! user and its commands run through `runuser`.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// The user the server runs as, when not this one (running as root).
    user: Option<String>,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<major>/bin`).
fn binaries() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no PostgreSQL server installed (Debian: postgresql; .ci/packages installs it)")?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p).context("no initdb under /usr/lib/postgresql")
}

impl Cluster {
    /// Creates and starts a cluster.
    pub fn start() -> anyhow::Result<Cluster> {
        let bin = binaries()?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
        let dir = std::env::temp_dir().join(format!("huijiao-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let id = Command::new("id").arg("-u").output().context("cannot run id")?;
        let root = String::from_utf8_lossy(&id.stdout).trim() == "0";
        let user = root.then(|| "postgres".to_string());
        if root {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status()?.success();
            anyhow::ensure!(ok, "cannot give {} to the postgres user", dir.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let c = Cluster { dir, bin, port, user };
        let data = c.data();
        c.run("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])?;
        c.start_server()?;
        Ok(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<Output> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd.args(args).current_dir(&self.dir).output().with_context(|| format!("cannot run {}", exe.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    }

    fn start_server(&self) -> anyhow::Result<()> {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display());
        let log = self.dir.join("server.log");
        self.run("pg_ctl", &["-D", self.data().to_str().unwrap(), "-o", &opts, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"])?;
        Ok(())
    }

    /// Stops the server as a crash would (`immediate`: no checkpoint) and starts it
    /// again; it recovers from its WAL.
    pub fn crash_restart(&self) -> anyhow::Result<()> {
        self.run("pg_ctl", &["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"])?;
        self.start_server()
    }

    /// `postgresql://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with psql: its rows, one a line, columns separated by `|`.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let out = self
            .run("psql", &["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])?;
        Ok(String::from_utf8(out.stdout)?)
    }

    /// The folder of the cluster.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
