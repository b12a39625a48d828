//! QUIC and TLS set-up shared by the uplink and the downlink, and frame IO.
//!
//! TLS 1.3 only, with the ring provider passed explicitly everywhere; client
//! certificates are required and verified against the federation CA and its CRL; ALPN
//! `huijiao/1`; no 0-RTT. Flow control is bounded so a stalled or hostile peer costs a
//! parent at most about [`CONN_RECEIVE_WINDOW`] of buffered data plus one frame
//! (capped by `wire::MAX_FRAME` and a shared budget in the downlink).

use crate::config::TlsPaths;
use crate::pki;
use crate::store::{StoreError, WriterGone};
use anyhow::{bail, Context};
use huijiao_protocol::wire::{self, Message, PeerRefusal};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{TransportConfig, VarInt};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;

/// Per-stream flow-control window.
pub const STREAM_RECEIVE_WINDOW: u32 = 1024 * 1024;
/// Per-connection flow-control window: the most a peer can make us buffer.
pub const CONN_RECEIVE_WINDOW: u32 = 2 * 1024 * 1024;

/// QUIC application close codes.
pub const CLOSE_DONE: u32 = 0;
pub const CLOSE_REFUSED: u32 = 1;
pub const CLOSE_ERROR: u32 = 2;
/// The parent holds the child's changes back for now (its volume bound); the reason
/// follows as `held_back: …`. Not a refusal: the child comes back later.
pub const CLOSE_HELD: u32 = 3;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What SIGHUP can change while connections stay up: the configuration (allow-list,
/// log filter) and the identity (certificate, key, CA, CRL). Sent to the downlink and
/// the uplink on a watch channel.
pub type Reload = Arc<(Arc<crate::config::Config>, Identity)>;

/// This node's certificates and key, loaded and checked.
#[derive(Clone, Debug)]
pub struct Identity {
    pub node_id: String,
    pub ca: Vec<CertificateDer<'static>>,
    pub certs: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    pub crl_path: std::path::PathBuf,
}

impl Identity {
    /// Loads the `[tls]` files; refuses a key readable by others and a certificate that
    /// names another node than `node_id`.
    pub fn load(paths: &TlsPaths, node_id: &str) -> anyhow::Result<Identity> {
        let ca = pki::load_certs(&paths.ca)?;
        let certs = pki::load_certs(&paths.cert)?;
        let key = pki::load_key(&paths.key)?;
        let named = pki::node_id_of(&certs[0]).with_context(|| format!("certificate {}", paths.cert.display()))?;
        if named != node_id {
            bail!(
                "certificate {} names node {named}, but this node is {node_id}: a certificate belongs to exactly one node",
                paths.cert.display()
            );
        }
        pki::check_key_matches(&certs[0], &key).with_context(|| {
            format!(
                "the key {} does not belong to the certificate {} (a key of another issue or renewal? copy both files of the same `huijiao pki issue`/`renew`)",
                paths.key.display(),
                paths.cert.display()
            )
        })?;
        pki::load_crls(&paths.crl)?;
        Ok(Identity { node_id: node_id.to_string(), ca, certs, key: Arc::new(key), crl_path: paths.crl.clone() })
    }

    fn roots(&self) -> anyhow::Result<Arc<rustls::RootCertStore>> {
        let mut roots = rustls::RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone()).context("invalid CA certificate")?;
        }
        Ok(Arc::new(roots))
    }

    fn crls(&self) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
        pki::load_crls(&self.crl_path)
    }

    /// The server side: client certificates required, checked against CA and CRL;
    /// every certificate refused at the handshake is noted in `refused` (by the node
    /// id it names, and why). Re-reads the CRL, so call it again after the CRL changes.
    pub fn server_config(&self, idle: Duration, refused: &HandshakeRefusals) -> anyhow::Result<quinn::ServerConfig> {
        let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots()?, provider())
            .with_crls(self.crls()?)
            .build()
            .context("cannot build the client verifier")?;
        let verifier = Arc::new(RecordingVerifier { inner, refused: refused.clone() });
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .context("certificate and key do not match")?;
        tls.alpn_protocols = vec![wire::ALPN.to_vec()];
        tls.max_early_data_size = 0;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
        cfg.transport_config(transport(idle));
        cfg.migration(false);
        Ok(cfg)
    }

    /// The client side: present our certificate, verify the parent's against CA and CRL.
    pub fn client_config(&self, idle: Duration) -> anyhow::Result<quinn::ClientConfig> {
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(self.roots()?, provider())
            .with_crls(self.crls()?)
            .build()
            .context("cannot build the server verifier")?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.certs.clone(), self.key.clone_key())
            .context("certificate and key do not match")?;
        tls.alpn_protocols = vec![wire::ALPN.to_vec()];
        tls.enable_early_data = false;
        let mut cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
        cfg.transport_config(transport(idle));
        Ok(cfg)
    }
}

/// Certificates refused at the handshake: (identity shown, reason, detail). The
/// downlink drains it into the store for `huijiao status`.
pub type HandshakeRefusals = Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// The client verifier, noting who was refused and why (quinn only reports that the
/// handshake failed).
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    refused: HandshakeRefusals,
}

impl rustls::server::danger::ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now).inspect_err(|e| {
            use rustls::CertificateError as C;
            let reason = match e {
                rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => "certificate expired",
                rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => "certificate not yet valid",
                rustls::Error::InvalidCertificate(C::Revoked) => "certificate revoked",
                rustls::Error::InvalidCertificate(C::UnknownIssuer) => "unknown CA",
                _ => "certificate refused",
            };
            // Unverified, but what the peer claims is what an operator needs to see.
            let who = pki::node_id_of(end_entity).map_or_else(|_| "a certificate naming no node".to_string(), |id| format!("node {id}"));
            if let Ok(mut list) = self.refused.lock() {
                if list.len() < 10_000 {
                    list.push((who, reason.to_string(), e.to_string()));
                }
            }
        })
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Bounded windows and streams; keep-alive well below half the idle timeout.
pub fn transport(idle: Duration) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.max_idle_timeout(Some(idle.try_into().unwrap_or_else(|_| VarInt::from_u32(30_000).into())));
    t.keep_alive_interval(Some(idle / 3));
    t.stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW));
    t.receive_window(VarInt::from_u32(CONN_RECEIVE_WINDOW));
    t.send_window(u64::from(CONN_RECEIVE_WINDOW));
    // One sync stream per session; a spare for a session restarting on the same link.
    t.max_concurrent_bidi_streams(VarInt::from_u32(2));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.datagram_receive_buffer_size(None);
    // GSO fails with EIO/EINVAL on some virtual machines; the gain is small next to
    // the SQLite commits that bound sync throughput.
    t.enable_segmentation_offload(false);
    Arc::new(t)
}

/// A client-only endpoint on an ephemeral UDP port, IPv6 (which also reaches IPv4
/// addresses on Linux) or IPv4.
pub fn client_endpoint(v6: bool) -> anyhow::Result<quinn::Endpoint> {
    let bind: std::net::SocketAddr = if v6 { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("valid");
    quinn::Endpoint::client(bind).with_context(|| format!("cannot open a UDP socket on {bind}"))
}

/// Why a sync session ended, on either side.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// One side refused the other: the refusal the peer sent (or this side sent it),
    /// with its code and message.
    #[error("refused: {0}")]
    Refused(PeerRefusal),
    /// A frame could not be read, decoded or written (the stream broke, a frame that
    /// does not decode).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection could not be made or was lost.
    #[error("{what}: {cause}")]
    Connection { what: String, cause: quinn::ConnectionError },
    /// The peer cannot be reached at all (its address, this node's socket or TLS set-up).
    #[error("{0}")]
    Unreachable(String),
    /// The store failed under the session.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The peer did not do its part in time: a frame body, a stall.
    #[error("{0}")]
    Timeout(String),
    /// The peer closed the sync stream.
    #[error("the peer closed the sync stream")]
    Closed,
    /// The session cannot go on (a resynchronisation, a helper task that failed).
    #[error("{0}")]
    Ended(String),
}

impl From<WriterGone> for SessionError {
    fn from(e: WriterGone) -> SessionError {
        SessionError::Store(e.into())
    }
}

impl From<tokio::task::JoinError> for SessionError {
    fn from(e: tokio::task::JoinError) -> SessionError {
        SessionError::Ended(format!("a session task failed: {e}"))
    }
}

impl SessionError {
    /// The connection error underneath, if the connection ended.
    fn connection(&self) -> Option<&quinn::ConnectionError> {
        match self {
            SessionError::Connection { cause, .. } => Some(cause),
            SessionError::Frame(FrameError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(c))))
            | SessionError::Frame(FrameError::Write(quinn::WriteError::ConnectionLost(c))) => Some(c),
            _ => None,
        }
    }

    /// The peer's refusal: sent as a message, or as the reason it closed the
    /// connection with (`code: message`, refused at the handshake).
    pub fn refusal(&self) -> Option<PeerRefusal> {
        if let SessionError::Refused(r) = self {
            return Some(r.clone());
        }
        match self.connection()? {
            quinn::ConnectionError::ApplicationClosed(ac) if ac.error_code == VarInt::from_u32(CLOSE_REFUSED) => {
                let text = String::from_utf8_lossy(&ac.reason).into_owned();
                let (code, message) = text.split_once(": ").unwrap_or(("refused", text.as_str()));
                Some(PeerRefusal::new(code, message))
            }
            // The TLS handshake refused this node's certificate: the alert says why.
            quinn::ConnectionError::ConnectionClosed(cc) => tls_alert_refusal(u64::from(cc.error_code)),
            _ => None,
        }
    }

    /// Why the parent holds this node's changes back for now (its volume bound), if
    /// that is how the connection ended.
    pub fn held_back(&self) -> Option<String> {
        match self.connection()? {
            quinn::ConnectionError::ApplicationClosed(ac) if ac.error_code == VarInt::from_u32(CLOSE_HELD) => {
                Some(String::from_utf8_lossy(&ac.reason).into_owned())
            }
            _ => None,
        }
    }

    /// Whether the peer only closed its connection saying it was done
    /// ([`CLOSE_DONE`], shutting down): no error to show.
    pub fn closed_when_done(&self) -> bool {
        matches!(self.connection(), Some(quinn::ConnectionError::ApplicationClosed(a)) if a.error_code == VarInt::from_u32(CLOSE_DONE))
    }
}

/// A QUIC endpoint that listens for children on `addr`. Its stateless-reset key is
/// derived from this node's private key, so a parent restarted after a crash (kill -9,
/// power loss) recognises its children's old connections and resets them at once:
/// they reconnect in well under a second instead of after the 30 s idle timeout.
pub fn server_endpoint(identity: &Identity, server: quinn::ServerConfig, addr: std::net::SocketAddr) -> anyhow::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let runtime = quinn::default_runtime().context("no async runtime for QUIC")?;
    quinn::Endpoint::new(endpoint_config(identity), Some(server), socket, runtime).with_context(|| format!("cannot listen on {addr}"))
}

/// The endpoint configuration with this node's own stateless-reset key (the same in
/// every life of the node) and a connection-id generator that takes any id as one it
/// may have made (see [`Cids`]).
fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    use sha2::Digest;
    let derive = |what: &[u8]| {
        let mut h = sha2::Sha256::new();
        h.update(what);
        h.update(identity.key.secret_der());
        h.finalize()
    };
    let reset = derive(b"huijiao QUIC stateless reset key v1\0");
    let mut cfg = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &reset)));
    cfg.cid_generator(|| Box::new(Cids) as Box<dyn quinn::ConnectionIdGenerator>);
    cfg
}

/// Random connection ids of 8 bytes. quinn's default generator is keyed by a secret
/// of the process and drops, without a stateless reset, a packet whose id it did not
/// make — so after a restart it would never reset a child's old connection. These
/// are accepted as any node's own (quinn still bounds and rate-limits its resets).
struct Cids;

impl quinn::ConnectionIdGenerator for Cids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("the operating system's random source");
        quinn::ConnectionId::new(&b)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// The refusal a TLS alert from the peer stands for (QUIC carries an alert as the
/// transport error 0x100 + alert), for the alerts that concern this node's certificate.
fn tls_alert_refusal(code: u64) -> Option<PeerRefusal> {
    let alert = code.checked_sub(0x100).filter(|a| *a < 0x100)?;
    let (code, message) = match alert {
        44 => ("certificate_revoked", "the parent refused this node's certificate: it is revoked (ask the CA's operator for a new one)"),
        45 => ("certificate_expired", "the parent refused this node's certificate: it has expired (huijiao pki renew)"),
        48 => ("unknown_ca", "the parent refused this node's certificate: it is not from the federation's CA"),
        42 | 43 | 46 => ("certificate_refused", "the parent refused this node's certificate"),
        _ => return None,
    };
    Some(PeerRefusal::new(code, message))
}

/// The certificate chain a verified peer presented.
pub fn peer_certs(conn: &quinn::Connection) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    conn.peer_identity()
        .context("the peer presented no certificate")?
        .downcast::<Vec<CertificateDer<'static>>>()
        .map(|b| *b)
        .map_err(|_| anyhow::anyhow!("unexpected peer identity type"))
}

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Decode(#[from] wire::DecodeError),
    // The cause is the source, shown once by `{:#}`.
    #[error("reading the sync stream")]
    Read(#[from] quinn::ReadExactError),
    #[error("writing the sync stream")]
    Write(#[from] quinn::WriteError),
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<Vec<u8>>, FrameError> {
    match read_frame_len(recv).await? {
        Some(len) => read_frame_body(recv, len).await.map(Some),
        None => Ok(None),
    }
}

/// Reads a frame's length prefix and checks it against the cap, before anything is
/// allocated; `None` at a clean end of stream. A caller that bounds memory shared
/// across connections reserves the length before [`read_frame_body`].
pub async fn read_frame_len(recv: &mut quinn::RecvStream) -> Result<Option<usize>, FrameError> {
    let mut prefix = [0u8; 4];
    match recv.read_exact(&mut prefix).await {
        Ok(()) => Ok(Some(wire::check_frame_len(prefix)?)),
        Err(quinn::ReadExactError::FinishedEarly(0)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads a frame body of `len` bytes (checked by [`read_frame_len`]).
pub async fn read_frame_body(recv: &mut quinn::RecvStream, len: usize) -> Result<Vec<u8>, FrameError> {
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads a frame body of `len` bytes in pieces, calling `reserve` with each piece's
/// size before it is buffered: memory is spent only on bytes that arrived.
pub async fn read_frame_body_reserving<F, Fut, P>(
    recv: &mut quinn::RecvStream,
    len: usize,
    mut reserve: F,
) -> Result<(Vec<u8>, Vec<P>), FrameError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = P>,
{
    const PIECE: usize = 64 * 1024;
    let mut body = Vec::new();
    let mut held = Vec::new();
    while body.len() < len {
        let n = (len - body.len()).min(PIECE);
        held.push(reserve(n).await);
        let start = body.len();
        body.resize(start + n, 0);
        recv.read_exact(&mut body[start..]).await?;
    }
    Ok((body, held))
}

pub async fn write_frame(send: &mut quinn::SendStream, msg: &Message) -> Result<(), FrameError> {
    send.write_all(&wire::encode_frame(msg)).await?;
    Ok(())
}

/// How a session reads one item off its stream: a whole message (the uplink), or a
/// message decoded and checked under a budget (the downlink). `Ok(None)` at a clean
/// end of the stream.
pub trait FrameSource: Send + 'static {
    type Item: Send + 'static;
    fn next(&mut self, recv: &mut quinn::RecvStream) -> impl std::future::Future<Output = Result<Option<Self::Item>, SessionError>> + Send;
}

/// Reads a session's frames on a task of its own, so a slow store never stalls the
/// connection: each item goes down a channel of `depth`; the first error (or the end
/// of the stream, as `SessionError::Closed`) is the last item. The task stops when the
/// returned guard drops.
pub fn spawn_frame_reader<S: FrameSource>(
    mut recv: quinn::RecvStream,
    mut source: S,
    depth: usize,
) -> (tokio::sync::mpsc::Receiver<Result<S::Item, SessionError>>, AbortOnDrop) {
    let (tx, rx) = tokio::sync::mpsc::channel(depth);
    let task = tokio::spawn(async move {
        loop {
            let item = match source.next(&mut recv).await {
                Ok(Some(item)) => Ok(item),
                Ok(None) => Err(SessionError::Closed),
                Err(e) => Err(e),
            };
            let last = item.is_err();
            if tx.send(item).await.is_err() || last {
                break;
            }
        }
    });
    (rx, AbortOnDrop(task))
}

/// The uplink's frames: each a whole message.
pub struct Messages;

impl FrameSource for Messages {
    type Item = Message;
    async fn next(&mut self, recv: &mut quinn::RecvStream) -> Result<Option<Message>, SessionError> {
        match read_frame(recv).await? {
            Some(body) => Ok(Some(wire::decode_message(&body).map_err(FrameError::Decode)?)),
            None => Ok(None),
        }
    }
}

/// Aborts a helper task when its owner goes away.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
