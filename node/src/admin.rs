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

/// Serves the socket until `shutdown`. On each connection the daemon says who it is
/// (one JSON line); a client may then send one request line: `status` (nothing more),
/// or an office's registration command ([`crate::registration::Command`]) as JSON,
/// answered in one line `{"ok": …}` or `{"error": {"status", "message", "errors"}}`.
pub async fn serve(
    data_dir: PathBuf,
    node: String,
    registration: Option<std::sync::Arc<crate::registration::Registration>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
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
                if let Ok((stream, _)) = conn {
                    let now = DaemonInfo { acked: crate::health::acked_now(), ..info.clone() };
                    let line = serde_json::to_string(&now).unwrap_or_default() + "\n";
                    tokio::spawn(answer(stream, line, registration.clone()));
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// One connection: who the daemon is, then at most one request.
async fn answer(stream: tokio::net::UnixStream, info: String, registration: Option<std::sync::Arc<crate::registration::Registration>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (read, mut write) = stream.into_split();
    if tokio::time::timeout(Duration::from_secs(2), write.write_all(info.as_bytes())).await.is_err() {
        return;
    }
    let mut request = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(1 << 20));
    match tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut request)).await {
        Ok(Ok(n)) if n > 0 && request.trim() != "status" => {}
        _ => return,
    }
    let answer = match (serde_json::from_str::<crate::registration::Command>(request.trim()), registration) {
        (Err(e), _) => serde_json::json!({"error": {"status": 400, "message": format!("not a command: {e}")}}),
        (Ok(_), None) => {
            serde_json::json!({"error": {"status": 404, "message": "online registration is off at this node (no [registration] section)"}})
        }
        (Ok(c), Some(reg)) => match reg.command(c).await {
            Ok(v) => serde_json::json!({"ok": v}),
            Err(r) => serde_json::json!({"error": crate::registration::refusal_json(&r)}),
        },
    };
    let line = answer.to_string() + "\n";
    let _ = tokio::time::timeout(Duration::from_secs(5), write.write_all(line.as_bytes())).await;
}

/// Sends an office's command to the daemon of `data_dir`: `None` when no daemon
/// answers (the caller then works on the store itself), else its answer.
pub fn command(data_dir: &Path, c: &crate::registration::Command) -> Option<anyhow::Result<serde_json::Value>> {
    let mut s = std::os::unix::net::UnixStream::connect(socket_path(data_dir)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut reader = std::io::BufReader::new(s.try_clone().ok()?);
    let mut info = String::new();
    reader.read_line(&mut info).ok()?;
    serde_json::from_str::<DaemonInfo>(&info).ok()?;
    let request = serde_json::to_string(c).ok()? + "\n";
    if let Err(e) = s.write_all(request.as_bytes()) {
        return Some(Err(anyhow::anyhow!("cannot ask the running daemon: {e}")));
    }
    let mut line = String::new();
    Some(match reader.read_line(&mut line) {
        Ok(n) if n > 0 => serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("the daemon answered something else: {e}")),
        Ok(_) => Err(anyhow::anyhow!("the daemon closed the admin socket without an answer")),
        Err(e) => Err(anyhow::anyhow!("no answer from the running daemon: {e}")),
    })
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
