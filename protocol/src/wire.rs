//! The federation wire format, version 1.
//!
//! A sync session is one QUIC bidirectional stream opened by the child. Each direction
//! carries *frames*: a 4-byte little-endian length, then that many bytes of one
//! bincode-2 encoded [`Message`] (standard config: varint integers, little endian).
//! The length is checked against [`MAX_FRAME`] before anything is allocated.
//!
//! ```text
//! child                                   parent
//!   Hello {versions, node_id, features} ─▶
//!                                       ◀─ Welcome {version, node_id, cursor, features}
//!   Batch {after, upto, payload}        ─▶   (several in flight)
//!   Batch {after, upto, payload}        ─▶
//!                                       ◀─ Ack {cursor}   (after the durable commit)
//!                                       ◀─ PeerRefusal {code, message}   (then close)
//! ```
//!
//! `cursor` is the highest sequence number of the child's change log that the parent
//! has durably applied; a new session resumes from it. A batch covers the child's log
//! sequence range `(after, upto]`, and the parent applies it only if `after` equals its
//! cursor, so replays and reordered batches are no-ops.
//!
//! **The rule: shipped types are never changed.** bincode writes no field names or
//! tags: never reorder, insert or remove a field of a type below, and never reorder
//! enum variants. A change to the wire is a new protocol version with new types;
//! `Hello` keeps its layout forever so any two versions can negotiate.

use serde::{Deserialize, Serialize};

/// The protocol versions this build speaks. Version 2 adds [`Resume`] and
/// [`Resumed`]: the child names its change log (a random id made with its store)
/// after `Welcome`, and the parent keeps its cursor per log, so a store restored from
/// an old copy, or made anew, is never mistaken for the one it replaced.
pub const MIN_VERSION: u16 = 1;
pub const MAX_VERSION: u16 = 2;
/// The QUIC ALPN token.
pub const ALPN: &[u8] = b"huijiao/1";
/// `Hello.magic`: lets a peer recognise a huijiao stream among garbage.
pub const MAGIC: u32 = 0x4855_4a49; // "HUJI"
/// Feature bit: batch payloads may be zstd-compressed.
pub const FEATURE_ZSTD: u32 = 1;
/// Feature bit: the child reports the health of its subtree ([`Health`]).
pub const FEATURE_HEALTH: u32 = 2;
/// Feature bit: the parent tells the child of conflicts concerning its subtree ([`Notes`]).
pub const FEATURE_NOTES: u32 = 4;
/// The most conflicts one [`Notes`] message may carry.
pub const MAX_NOTES: usize = 10_000;
/// The most nodes one [`Health`] report may list (a province has a few hundred).
pub const MAX_HEALTH_NODES: usize = 20_000;
/// The largest frame either side accepts, checked before decoding.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// The largest decompressed batch payload.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// The largest record body one change may carry. Intake limits keep a record's
/// canonical JSON under 64 KiB (spec §3), so this leaves room to spare, and any batch
/// of at least one change fits a frame.
pub const MAX_CHANGE_BODY: usize = 256 * 1024;

/// Every message. Variant order is fixed; new variants only ever go at the end, and
/// are only sent once both sides agreed on the version that has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Hello(Hello),
    Welcome(Welcome),
    Batch(Batch),
    Ack(Ack),
    Refused(PeerRefusal),
    /// Version 2, child → parent, right after `Welcome`.
    Resume(Resume),
    /// Version 2, parent → child: the answer to `Resume`.
    Resumed(Resumed),
    /// Version 2, child → parent, instead of `Resume`: a page of the records the parent
    /// holds from the child's subtree (`huijiao recover`).
    Fetch(Fetch),
    /// Version 2, parent → child: the answer to `Fetch`.
    Records(Records),
    /// With [`FEATURE_HEALTH`], child → parent, now and then: the health of the child
    /// and of every node below it, so the top lists its whole subtree.
    Health(Health),
    /// With [`FEATURE_NOTES`], parent → child, when it changes: every conflict this
    /// node and the nodes above it hold aside that concerns a record of the child's
    /// subtree, so the node where the record entered learns of it.
    Notes(Notes),
}

/// Conflicts concerning a child's subtree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Notes {
    pub conflicts: Vec<ConflictNote>,
}

/// One conflict: the same `reg_no` arrived from two origins; where they met, the
/// second arrival was quarantined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, PartialOrd, Ord, Hash)]
pub struct ConflictNote {
    pub reg_no: String,
    /// The origin whose change was held aside, and its version.
    pub origin: String,
    pub version: i64,
    /// The origin of the record the meeting node keeps.
    pub kept_origin: String,
    /// The node where they met.
    pub met_at: String,
    /// When it quarantined the change (its clock, ms).
    pub at: i64,
    pub reason: String,
}

/// How the nodes of a subtree are doing, as the reporting child knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub nodes: Vec<NodeHealth>,
}

/// One node's health: what it said of itself in its last report, and how its parent
/// sees it (filled in by the parent as the report travels up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeHealth {
    pub node: String,
    /// The node above it.
    pub parent: String,
    /// When the node made its last report (its clock, ms); 0: never heard.
    pub reported_at: i64,
    pub agent: String,
    pub records: u64,
    pub last_change_at: Option<i64>,
    /// Changes its parent has not acknowledged, and when the oldest was made.
    pub backlog: u64,
    pub backlog_oldest_at: Option<i64>,
    pub uplink_state: String,
    pub uplink_error: Option<String>,
    /// When its certificate expires (ms).
    pub cert_expires_at: Option<i64>,
    /// Files waiting in its inbox.
    pub inbox_waiting: u64,
    /// Changes it holds aside as conflicts (two origins, one reg_no).
    pub conflicts: u64,
    /// As its parent sees it: a live session, when last heard.
    pub connected: bool,
    pub last_seen_at: Option<i64>,
}

/// The child's opening message. Its layout never changes, in any version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub magic: u32,
    pub min_version: u16,
    pub max_version: u16,
    /// The node id the child believes it is; must equal the id in its certificate.
    pub node_id: String,
    /// Feature bits ([`FEATURE_ZSTD`]).
    pub features: u32,
    /// Free text for logs, e.g. `huijiao 0.1.0`.
    pub agent: String,
}

/// The parent's answer: the version chosen and where to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u16,
    pub node_id: String,
    /// Highest child log sequence durably applied here.
    pub cursor: u64,
    /// Features both sides support.
    pub features: u32,
}

/// Changes from the child's log with sequence numbers in `(after, upto]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub after: u64,
    pub upto: u64,
    /// Number of changes in the payload.
    pub count: u32,
    /// 0: plain; 1: zstd.
    pub encoding: u8,
    /// The encoded `Vec<Change>` ([`encode_changes`]), compressed per `encoding`.
    #[serde(with = "bytes")]
    pub payload: Vec<u8>,
}

pub const ENCODING_PLAIN: u8 = 0;
pub const ENCODING_ZSTD: u8 = 1;

/// Version 2: the child's change log, named by the random id its store was made
/// with, and the last sequence number in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// 32 lower-case hex digits.
    pub log_id: String,
    pub last_seq: u64,
}

/// Version 2: the highest sequence of that log the parent durably holds, and the
/// fingerprint ([`fingerprint`]) of the last change it received from that log (at
/// `check_seq`; 0 when none). A cursor beyond the child's `last_seq`, or a change at
/// `check_seq` that is not the one the parent holds, means the child's store was
/// rewound (restored from an older copy, even one that has since grown past the
/// cursor): the child starts a new log and sends it all again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub cursor: u64,
    pub check_seq: u64,
    pub check: [u8; 32],
}

/// What identifies a change in its log: its record, version, operation and content.
pub fn fingerprint(reg_no: &str, version: u64, op: Op, hash: &[u8; 32]) -> [u8; 32] {
    let mut b = Vec::with_capacity(reg_no.len() + 42);
    b.extend_from_slice(reg_no.as_bytes());
    b.push(0);
    b.extend_from_slice(&version.to_le_bytes());
    b.push(match op {
        Op::Upsert => 0,
        Op::Withdraw => 1,
    });
    b.extend_from_slice(hash);
    crate::record::sha256(&b)
}

/// Version 2: asks for the records the parent holds whose origin lies in the child's
/// subtree, in `reg_no` order after `after`, at most `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    pub after: String,
    pub limit: u32,
}

/// Version 2: a page of records, each as the change that made its latest version
/// (`seq` 0), encoded and compressed like a batch payload; `more` when the next page
/// has some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    pub count: u32,
    pub encoding: u8,
    #[serde(with = "bytes")]
    pub payload: Vec<u8>,
    pub more: bool,
}

/// Everything up to `cursor` is durably applied at the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub cursor: u64,
    /// Of the acknowledged batch: changes applied, skipped as already known,
    /// and quarantined as conflicts.
    pub applied: u32,
    pub duplicates: u32,
    pub conflicts: u32,
}

/// A peer's refusal: the session ends with a stable snake_case `code` and a message
/// for operators (a refused *file* is `report::Refusal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRefusal {
    pub code: String,
    pub message: String,
}

impl PeerRefusal {
    pub fn new(code: &str, message: impl Into<String>) -> PeerRefusal {
        PeerRefusal { code: code.to_string(), message: message.into() }
    }
}

impl std::fmt::Display for PeerRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What a change does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Upsert,
    Withdraw,
}

/// One node a change passed through, and when that node accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    pub node: String,
    pub accepted_at_ms: i64,
}

/// One entry of a change log, as it travels upward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The sender's log sequence number.
    pub seq: u64,
    pub reg_no: String,
    /// The node whose inbox accepted the record first; only it may change it.
    pub origin: String,
    /// The record's version at its origin (1, 2, …).
    pub version: u64,
    pub op: Op,
    /// The record's region code (for jurisdiction checks without parsing the body).
    pub region: String,
    /// SHA-256 of `body` for an upsert, of the withdrawal marker for a withdrawal.
    pub hash: [u8; 32],
    /// The record's canonical JSON; None for a withdrawal.
    #[serde(with = "bytes::option")]
    pub body: Option<Vec<u8>>,
    /// Origin first; the sender last.
    pub hops: Vec<Hop>,
}

/// A frame or payload that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Byte strings written as serde bytes. bincode writes a sequence of `u8` and a byte
/// string alike (a varint length, then the bytes), so the wire is what it always was;
/// but a sequence is read back one element at a time through serde, a byte string in
/// one copy (measured: 3 % of a busy parent's CPU went to that loop).
mod bytes {
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub mod option {
        use serde::{de, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_some(&Wrap(b)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            d.deserialize_option(Opt)
        }

        struct Wrap<'a>(&'a [u8]);

        impl serde::Serialize for Wrap<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }

        struct Opt;

        impl<'de> de::Visitor<'de> for Opt {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an optional byte string")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }
        }
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ MAX_PAYLOAD }>()
}

/// The frame for a message: length prefix and bincode body.
pub fn encode_frame(msg: &Message) -> Vec<u8> {
    let body = bincode::serde::encode_to_vec(msg, config()).expect("messages always encode");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Checks a frame's length prefix before its body is read or allocated.
pub fn check_frame_len(prefix: [u8; 4]) -> Result<usize, DecodeError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(DecodeError::TooLarge { len, max: MAX_FRAME });
    }
    Ok(len)
}

/// Decodes a frame body (without the length prefix). Never panics.
pub fn decode_message(body: &[u8]) -> Result<Message, DecodeError> {
    if body.len() > MAX_FRAME {
        return Err(DecodeError::TooLarge { len: body.len(), max: MAX_FRAME });
    }
    let (msg, used) = bincode::serde::decode_from_slice(body, config()).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(DecodeError::Malformed(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(msg)
}

/// Splits a byte stream into frames (for simulations and tests; the QUIC driver reads
/// the prefix and body directly).
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if any. An error poisons the stream: the caller
    /// must close it.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = check_frame_len([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode_message(&self.buf[4..4 + len])?;
        self.buf.drain(..4 + len);
        Ok(Some(msg))
    }
}

/// Encodes changes for a batch payload.
pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    bincode::serde::encode_to_vec(changes, config()).expect("changes always encode")
}

/// Decodes a batch payload (after decompression). Never panics.
pub fn decode_changes(bytes: &[u8]) -> Result<Vec<Change>, DecodeError> {
    let (changes, used): (Vec<Change>, usize) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::Malformed(format!("{} trailing bytes", bytes.len() - used)));
    }
    Ok(changes)
}

/// The payload of a batch or a recovery page: the changes encoded, and compressed
/// with zstd when the session agreed to it and it pays (over 1 KiB, and smaller).
pub fn encode_payload(changes: &[Change], zstd_ok: bool) -> (u8, Vec<u8>) {
    let payload = encode_changes(changes);
    if zstd_ok && payload.len() > 1024 {
        if let Ok(c) = zstd::bulk::compress(&payload, 1) {
            if c.len() < payload.len() {
                return (ENCODING_ZSTD, c);
            }
        }
    }
    (ENCODING_PLAIN, payload)
}

/// Reverses [`encode_payload`], never inflating beyond [`MAX_PAYLOAD`]. Never panics.
pub fn decode_payload(encoding: u8, payload: Vec<u8>) -> Result<Vec<Change>, DecodeError> {
    let bytes = match encoding {
        ENCODING_PLAIN => payload,
        ENCODING_ZSTD => zstd::bulk::decompress(&payload, MAX_PAYLOAD).map_err(|e| DecodeError::Malformed(format!("zstd: {e}")))?,
        other => return Err(DecodeError::Malformed(format!("unknown payload encoding {other}"))),
    };
    decode_changes(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn payloads_round_trip_compressed_or_not_and_a_bomb_is_refused() {
        let c = Change {
            seq: 1,
            reg_no: "4201022024Y0001".into(),
            origin: "420102".into(),
            version: 1,
            op: Op::Upsert,
            region: "420102".into(),
            hash: [7; 32],
            body: Some(vec![b'x'; 4000]),
            hops: vec![],
        };
        let changes = vec![c; 10];
        let (enc, p) = encode_payload(&changes, true);
        assert_eq!(enc, ENCODING_ZSTD);
        assert_eq!(decode_payload(enc, p).unwrap(), changes);
        let (enc, p) = encode_payload(&changes, false);
        assert_eq!(enc, ENCODING_PLAIN);
        assert_eq!(decode_payload(enc, p).unwrap(), changes);
        assert!(decode_payload(9, vec![]).is_err());
        let bomb = zstd::bulk::compress(&vec![0u8; MAX_PAYLOAD + 1], 1).unwrap();
        assert!(decode_payload(ENCODING_ZSTD, bomb).is_err());
    }

    fn arb_change() -> impl Strategy<Value = Change> {
        (
            any::<u64>(),
            "[0-9A-Z]{15,17}",
            "[0-9]{6}",
            any::<u64>(),
            any::<bool>(),
            any::<[u8; 32]>(),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
            prop::collection::vec(("[0-9]{6}", any::<i64>()).prop_map(|(node, accepted_at_ms)| Hop { node, accepted_at_ms }), 0..5),
        )
            .prop_map(|(seq, reg_no, region, version, withdraw, hash, body, hops)| Change {
                seq,
                origin: region.clone(),
                reg_no,
                version,
                op: if withdraw { Op::Withdraw } else { Op::Upsert },
                region,
                hash,
                body,
                hops,
            })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), any::<u16>(), any::<u16>(), ".{0,8}", any::<u32>(), ".{0,8}").prop_map(
                |(magic, min_version, max_version, node_id, features, agent)| {
                    Message::Hello(Hello { magic, min_version, max_version, node_id, features, agent })
                }
            ),
            (any::<u16>(), ".{0,8}", any::<u64>(), any::<u32>())
                .prop_map(|(version, node_id, cursor, features)| Message::Welcome(Welcome { version, node_id, cursor, features })),
            (any::<u64>(), any::<u64>(), any::<u32>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..200))
                .prop_map(|(after, upto, count, encoding, payload)| Message::Batch(Batch { after, upto, count, encoding, payload })),
            (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>())
                .prop_map(|(cursor, applied, duplicates, conflicts)| Message::Ack(Ack { cursor, applied, duplicates, conflicts })),
            ("[a-z_]{0,12}", ".{0,20}").prop_map(|(code, message)| Message::Refused(PeerRefusal { code, message })),
            ("[0-9a-f]{32}", any::<u64>()).prop_map(|(log_id, last_seq)| Message::Resume(Resume { log_id, last_seq })),
            (any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(cursor, check_seq, check)| Message::Resumed(Resumed {
                cursor,
                check_seq,
                check
            })),
            (".{0,17}", any::<u32>()).prop_map(|(after, limit)| Message::Fetch(Fetch { after, limit })),
            (any::<u32>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..100), any::<bool>())
                .prop_map(|(count, encoding, payload, more)| Message::Records(Records { count, encoding, payload, more })),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(msg in arb_message()) {
            let frame = encode_frame(&msg);
            let mut r = FrameReader::default();
            r.push(&frame);
            prop_assert_eq!(r.next_message().unwrap(), Some(msg));
            prop_assert_eq!(r.next_message().unwrap(), None);
        }

        #[test]
        fn changes_round_trip(changes in prop::collection::vec(arb_change(), 0..8)) {
            prop_assert_eq!(decode_changes(&encode_changes(&changes)).unwrap(), changes);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_message(&bytes);
            let _ = decode_changes(&bytes);
            let mut r = FrameReader::default();
            r.push(&bytes);
            let _ = r.next_message();
        }

        #[test]
        fn a_frame_split_anywhere_reassembles(msg in arb_message(), cut in any::<prop::sample::Index>()) {
            let frame = encode_frame(&msg);
            let at = cut.index(frame.len() + 1);
            let mut r = FrameReader::default();
            r.push(&frame[..at]);
            if at < frame.len() {
                prop_assert_eq!(r.next_message().unwrap(), None);
            }
            r.push(&frame[at..]);
            prop_assert_eq!(r.next_message().unwrap(), Some(msg));
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_decoding() {
        let mut r = FrameReader::default();
        r.push(&((MAX_FRAME as u32) + 1).to_le_bytes());
        assert_eq!(r.next_message(), Err(DecodeError::TooLarge { len: MAX_FRAME + 1, max: MAX_FRAME }));
        // A huge claimed collection length inside a small frame does not allocate it.
        let mut body = vec![4u8]; // variant Refused
        body.extend_from_slice(&[0xFD, 0xFF, 0xFF, 0xFF, 0x7F]); // a ~2 GiB string length
        assert!(matches!(decode_message(&body), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn hello_layout_is_frozen() {
        // The first bytes of a version-1 Hello; any change here breaks negotiation.
        let hello = Message::Hello(Hello {
            magic: MAGIC,
            min_version: 1,
            max_version: 1,
            node_id: "420102".into(),
            features: 1,
            agent: "x".into(),
        });
        let frame = encode_frame(&hello);
        assert_eq!(&frame[4..], &[0, 0xFC, 0x49, 0x4A, 0x55, 0x48, 1, 1, 6, b'4', b'2', b'0', b'1', b'0', b'2', 1, 1, b'x']);
    }

    #[test]
    fn byte_strings_keep_the_layout_of_a_sequence_of_bytes() {
        // What shipped: `Vec<u8>` fields written as serde sequences. The byte-string
        // fields of today must read that and write the very same bytes.
        #[derive(Serialize, Deserialize)]
        struct Shipped {
            seq: u64,
            body: Option<Vec<u8>>,
            payload: Vec<u8>,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Now {
            seq: u64,
            #[serde(with = "bytes::option")]
            body: Option<Vec<u8>>,
            #[serde(with = "bytes")]
            payload: Vec<u8>,
        }
        let big: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        for (body, payload) in
            [(Some("{\"a\":\"成果\"}".as_bytes().to_vec()), big.clone()), (None, Vec::new()), (Some(Vec::new()), vec![0xFF])]
        {
            let old = bincode::serde::encode_to_vec(Shipped { seq: 9, body: body.clone(), payload: payload.clone() }, config()).unwrap();
            let now = Now { seq: 9, body, payload };
            assert_eq!(bincode::serde::encode_to_vec(&now, config()).unwrap(), old);
            let (back, used): (Now, usize) = bincode::serde::decode_from_slice(&old, config()).unwrap();
            assert_eq!((back, used), (now, old.len()));
        }
    }
}
