//! Talking to systemd (`Type=notify`): READY=1, STATUS=, WATCHDOG=1, STOPPING=1 and
//! RELOADING=1 as datagrams on `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). Without the variable every call does nothing, so the daemon runs the
//! same by hand.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The notify socket, if systemd gave one.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
                }
                None => std::os::unix::net::SocketAddr::from_pathname(&path).ok()?,
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        Notifier { socket }
    }

    /// Sends `state` (newline-separated `KEY=value` lines); failures are ignored: the
    /// node must not stop because its supervisor went away.
    pub fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.socket {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                tracing::debug!("cannot notify systemd: {e}");
            }
        }
    }

    pub fn is_active(&self) -> bool {
        self.socket.is_some()
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC` when it is meant for this
/// process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_string_lossy().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n =
            Notifier { socket: Some((UnixDatagram::unbound().unwrap(), std::os::unix::net::SocketAddr::from_pathname(&path).unwrap())) };
        n.send("READY=1\nSTATUS=ok");
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=ok");
    }
}
