//! HTTPS on the node's own `[http]` listener (`[http] cert` and `key`, PEM files): for
//! an office without a reverse proxy in front. Handshakes run beside the accept loop,
//! a bounded number at once and each within a time limit, so a client that stalls one
//! holds up nobody; finished connections are handed to the same axum server as plain
//! HTTP. A renewed certificate is picked up at the next handshake after its files
//! change — no restart. TLS 1.2 and 1.3, rustls with ring, HTTP/1.1.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Handshakes in progress at once; more wait in the kernel's backlog.
const HANDSHAKES: usize = 256;
/// A client has this long to finish its handshake.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// The certificate chain and key, reloaded when either file changes.
#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Reads a PEM certificate chain and its private key (which must not be readable by
/// group or others).
fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    crate::pki::check_key_permissions(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the HTTPS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("the HTTPS certificate {} is not PEM", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("the HTTPS certificate file {} holds no certificate", cert.display());
    }
    let der = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read the HTTPS key {} (PEM)", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .with_context(|| format!("the HTTPS key {} is not a key rustls can sign with", key.display()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().with_context(|| format!("the HTTPS key {} does not belong to the certificate {}", key.display(), cert.display()))?;
    Ok(Arc::new(ck))
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut cur = self.current.lock().ok()?;
        let (c, k) = (modified(&self.cert), modified(&self.key));
        if (c, k) != (cur.0, cur.1) {
            // A renewal half-written, or a broken one, keeps the certificate in use.
            match load(&self.cert, &self.key) {
                Ok(new) => {
                    tracing::info!(cert = %self.cert.display(), "HTTPS certificate reloaded");
                    *cur = (c, k, new);
                }
                Err(e) => tracing::warn!("the HTTPS certificate changed but cannot be used (the old one stays): {e:#}"),
            }
        }
        Some(cur.2.clone())
    }
}

/// The acceptor for `[http] cert`/`key`; a missing or broken file stops the start.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let first = load(cert, key)?;
    let resolver =
        Reloading { cert: cert.to_path_buf(), key: key.to_path_buf(), current: Mutex::new((modified(cert), modified(key), first)) };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener whose connections have finished their TLS handshake.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` and shakes hands beside it until `shutdown`.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor, shutdown: CancellationToken) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let slots = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                };
                let (tcp, peer) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    a = listener.accept() => match a {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors and the like: wait a moment, as axum does.
                            tracing::warn!("HTTPS accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(peer = %peer, "HTTPS handshake failed: {e}"),
                        Err(_) => tracing::debug!(peer = %peer, "HTTPS handshake took too long"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop ended (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
