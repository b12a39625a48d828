//! `huijiao recover`: takes back, from the parent, the records this node's store lost
//! (a disk that died, a restore from an older copy). The parent sends every record
//! it holds whose origin lies in this node's subtree; each is stored at its version
//! unless this store already holds that version or a newer one. Run it with the
//! daemon stopped (it takes the data folder's lock).

use crate::config::Config;
use crate::net::{self, Identity};
use crate::store::{lock_data_dir, Writer};
use anyhow::{bail, Context};
use huijiao_protocol::sync::{check_recovered, ChildSession};
use huijiao_protocol::wire::{self, Message};

/// What a recovery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Records the parent holds from this subtree.
    pub held: u64,
    /// Of them, taken back into this store.
    pub restored: u64,
}

pub async fn run(cfg: &Config) -> anyhow::Result<Recovered> {
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let parent = cfg.parent.as_ref().context("this node has no [parent] to recover from")?;
    let tls = cfg.tls.as_ref().context("section `[tls]` is needed to reach the parent")?;
    let identity = Identity::load(tls, &cfg.node_id)?;
    let addr = tokio::net::lookup_host(&parent.address)
        .await
        .with_context(|| format!("cannot resolve parent address {}", parent.address))?
        .next()
        .with_context(|| format!("parent address {} resolves to nothing", parent.address))?;
    let endpoint = net::client_endpoint(addr.is_ipv6())?;
    let conn = endpoint
        .connect_with(identity.client_config(cfg.idle_timeout())?, addr, &crate::pki::node_dns_name(&parent.node_id))?
        .await
        .with_context(|| format!("cannot connect to parent {} at {addr}", parent.node_id))?;
    let (mut send, mut recv) = conn.open_bi().await.context("cannot open a stream to the parent")?;
    let mut session = ChildSession::new(&cfg.node_id, wire::FEATURE_ZSTD, 1, i64::MAX);
    net::write_frame(&mut send, &session.hello(crate::clock::now_ms(), concat!("huijiao recover ", env!("CARGO_PKG_VERSION")))).await?;
    let next = |m: anyhow::Result<Option<Vec<u8>>>| -> anyhow::Result<Message> {
        match m? {
            Some(body) => Ok(wire::decode_message(&body)?),
            None => bail!("the parent closed the stream"),
        }
    };
    match next(net::read_frame(&mut recv).await.map_err(|e| {
        net::SessionError::Frame(e).refusal().map_or_else(|| anyhow::anyhow!("no answer"), |r| anyhow::anyhow!("refused: {r}"))
    }))? {
        Message::Welcome(w) if w.version >= 2 => {}
        Message::Welcome(w) => {
            bail!("the parent speaks protocol version {}; `recover` needs version 2 (upgrade the parent first)", w.version)
        }
        Message::Refused(r) => bail!("the parent refused: {r}"),
        other => bail!("unexpected answer from the parent: {other:?}"),
    }
    let mut writer = Writer::open(Some(&cfg.db_path()), &cfg.node_id)?;
    let mut after = String::new();
    let mut out = Recovered { held: 0, restored: 0 };
    loop {
        net::write_frame(&mut send, &Message::Fetch(wire::Fetch { after: after.clone(), limit: huijiao_protocol::sync::MAX_FETCH }))
            .await?;
        let page = match next(net::read_frame(&mut recv).await.map_err(anyhow::Error::from))? {
            Message::Records(r) => r,
            Message::Refused(r) => bail!("the parent refused: {r}"),
            other => bail!("unexpected answer from the parent: {other:?}"),
        };
        let changes = wire::decode_payload(page.encoding, page.payload)?;
        let Some(last) = changes.last().map(|c| c.reg_no.clone()) else { break };
        // A withdrawn record comes as its last content and its withdrawal: one record.
        out.held += (changes.len() - changes.windows(2).filter(|w| w[0].reg_no == w[1].reg_no).count()) as u64;
        let checked = changes
            .into_iter()
            .map(|c| check_recovered(&cfg.node_id, c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        out.restored += writer.restore_records(checked, crate::clock::now_ms())?;
        after = last;
        if !page.more {
            break;
        }
    }
    writer.mark_recovered(crate::clock::now_ms())?;
    drop(writer);
    // Run as root: the service user must still own its store.
    crate::store::backup::give_back_to_owner(&cfg.data_dir)?;
    let _ = send.finish();
    conn.close(net::CLOSE_DONE.into(), b"recovered");
    endpoint.wait_idle().await;
    Ok(out)
}
