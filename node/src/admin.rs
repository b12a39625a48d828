//! The daemon's local admin socket: `data_dir/admin.sock`, a Unix socket only its
//! owner may use (mode 0600, in the private data folder). `huijiao status` asks it
//! whether the daemon runs, since when and as which version; with no answer it says
//! the daemon is not running and shows the store as the node left it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SOCKET: &str = "admin.sock";

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// What the running daemon says of itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DaemonInfo {
    pub pid: u32,
    pub version: String,
    pub node: String,
    /// ms since the epoch.
    pub started_at: i64,
    /// What the parent acknowledged last, as the daemon heard it (ahead of the store's
    /// copy, which is written every second or two and not while the disk is full).
    #[serde(default)]
    pub acked: Option<u64>,
}

/// Serves the socket until `shutdown`; one JSON line per connection.
pub async fn serve(data_dir: PathBuf, node: String, shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    let path = socket_path(&data_dir);
    // A socket left by a crash: nobody answers on it (the data folder's lock says no
    // other daemon runs), so it goes.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    crate::fsx::set_mode(&path, 0o600)?;
    let info = DaemonInfo {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        node,
        started_at: crate::clock::now_ms(),
        acked: None,
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            conn = listener.accept() => {
                if let Ok((mut stream, _)) = conn {
                    let now = DaemonInfo { acked: crate::health::acked_now(), ..info.clone() };
                    let line = serde_json::to_string(&now).unwrap_or_default() + "\n";
                    tokio::spawn(async move {
                        use tokio::io::AsyncWriteExt;
                        let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(line.as_bytes())).await;
                    });
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Asks the daemon of `data_dir`; None when nothing answers within a second.
pub fn ask(data_dir: &Path) -> Option<DaemonInfo> {
    let mut s = std::os::unix::net::UnixStream::connect(socket_path(data_dir)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let _ = s.write_all(b"status\n");
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}
