//! The 成果登记证书 (spec §6.2): what it states — 登记号, 成果名称, 第一完成单位, 主要完成人,
//! 成果类型, 登记日期, the registering office — and its check code, an HMAC-SHA256 of
//! those fields (and the record's version) under a key only this node holds
//! (`certificate.key` in the data folder, 0600, made on first use; in backups with the
//! store's folder). `/verify` recomputes it against the versions the node holds: a
//! forged or altered certificate finds none, and is refused without saying why.

use huijiao_protocol::record::{hex, sha256};
use huijiao_protocol::Record;
use std::path::Path;

/// The key's file in the data folder.
pub const KEY_FILE: &str = "certificate.key";

/// The node's certificate key, made (32 random bytes, owner-only) on first use.
pub fn key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes: Option<Vec<u8>> =
            (0..text.trim().len()).step_by(2).map(|i| u8::from_str_radix(text.trim().get(i..i + 2)?, 16).ok()).collect();
        if let Some(k) = bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            return Ok(k);
        }
        anyhow::bail!("{} does not hold a certificate key (64 hex digits)", path.display());
    }
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    crate::fsx::write_private(&path, hex(&k).as_bytes())?;
    Ok(k)
}

/// HMAC-SHA256 (RFC 2104) of `msg` under a 32-byte key.
fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut inner = vec![0x36u8; 64];
    let mut outer = vec![0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        inner[i] ^= k;
        outer[i] ^= k;
    }
    inner.extend_from_slice(msg);
    let h = sha256(&inner);
    outer.extend_from_slice(&h);
    sha256(&outer)
}

/// What a certificate states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub reg_no: String,
    pub version: i64,
    pub title: String,
    pub first_unit: String,
    pub persons: Vec<String>,
    pub kind: String,
    pub reg_date: String,
    pub office: String,
    /// `XXXX-XXXX-XXXX-XXXX-XXXX` (hex, upper case).
    pub code: String,
}

fn message(r: &Record, version: i64, office: &str) -> Vec<u8> {
    [r.reg_no.as_str(), &version.to_string(), &r.title, &r.first_unit, &r.persons.join("、"), r.kind.zh(), &r.reg_date.to_string(), office]
        .join("\u{1f}")
        .into_bytes()
}

fn code_of(key: &[u8; 32], r: &Record, version: i64, office: &str) -> String {
    let h = hex(&hmac(key, &message(r, version, office))[..10]).to_ascii_uppercase();
    h.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).expect("hex")).collect::<Vec<_>>().join("-")
}

/// The certificate of version `version` of `r`, issued by `office`.
pub fn issue(key: &[u8; 32], r: &Record, version: i64, office: &str) -> Certificate {
    Certificate {
        reg_no: r.reg_no.clone(),
        version,
        title: r.title.clone(),
        first_unit: r.first_unit.clone(),
        persons: r.persons.clone(),
        kind: r.kind.zh().to_string(),
        reg_date: r.reg_date.to_string(),
        office: office.to_string(),
        code: code_of(key, r, version, office),
    }
}

/// The certificate `code` confirms among the versions of a record (`(version, body)`):
/// none when it was forged, altered or belongs to no version held here.
pub fn verify(key: &[u8; 32], code: &str, versions: &[(i64, Record)], office: &str) -> Option<Certificate> {
    let given: String = code.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_uppercase();
    versions.iter().map(|(v, r)| issue(key, r, *v, office)).find(|c| {
        let want: String = c.code.chars().filter(char::is_ascii_alphanumeric).collect();
        crate::web::session::constant_time_eq(want.as_bytes(), given.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_pythons_and_codes_change_with_any_field() {
        // Against Python's hmac module:
        // hmac.new(bytes(range(32)), b"huijiao", "sha256").hexdigest()
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        assert_eq!(hex(&hmac(&key, b"huijiao")), "09899a0ebb4c0d42c44ff0d8d1f972cb2e3dc477f2b5108c864095b1fbdb2a2a");
        let dir = tempfile::tempdir().unwrap();
        let k = super::key(dir.path()).unwrap();
        assert_eq!(super::key(dir.path()).unwrap(), k, "made once, then read");
        let r: Record = serde_json::from_value(serde_json::json!({
            "reg_no": "4201002026Y0001", "title": "成果", "kind": "应用技术", "region": "420100", "reg_date": "2026-12-07",
            "first_unit": "武汉大学", "units": [], "persons": ["张三"], "keywords": [], "discipline": "413", "industry": "C27",
            "stage": "初期阶段", "level": null, "trl": null, "task_source": "计划外", "plan_no": null, "fiscal_funded": null,
            "ip": [], "transfer": null, "abstract": "x", "funding": null, "benefit": null, "contact": null, "phone": null,
            "secret": "公开", "embargo_until": null
        }))
        .unwrap();
        let c = issue(&k, &r, 1, "武汉市科学技术局");
        assert_eq!(c.code.len(), 24);
        assert_eq!(verify(&k, &c.code.to_lowercase(), &[(1, r.clone())], "武汉市科学技术局").unwrap().version, 1);
        let mut altered = c.code.clone().into_bytes();
        altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
        assert!(verify(&k, std::str::from_utf8(&altered).unwrap(), &[(1, r.clone())], "武汉市科学技术局").is_none());
        assert!(verify(&k, &c.code, &[(2, r.clone())], "武汉市科学技术局").is_none(), "another version");
        assert!(verify(&k, &c.code, &[(1, r)], "另一个机构").is_none(), "another office");
    }
}
