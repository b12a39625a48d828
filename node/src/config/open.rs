//! The online services' sections — `[registration]`, `[oai]`, `[mirror]` — as written
//! and as validated: what units, harvesters and analysts reach beside the office channel.

use super::ConfigFile;
use anyhow::{bail, Context};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[registration]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSection {
    /// The registering office's name (登记机构), printed on certificates. Required.
    pub office: String,
}

/// `[oai]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OaiSection {
    /// The repository's domain name for OAI identifiers (`oai:<this>:<reg_no>`),
    /// e.g. `kjcg.example.gov.cn`. Required.
    pub repository_identifier: String,
    /// Who answers for the repository. Required.
    pub admin_email: String,
    /// The name Identify gives. Default: 科技成果登记目录 and the node's region.
    #[serde(default)]
    pub repository_name: Option<String>,
}

/// `[mirror]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSection {
    /// A file holding the PostgreSQL URL (with its password), readable by its owner
    /// only. Required.
    pub postgres_url_file: PathBuf,
    /// The PostgreSQL schema. Default: `huijiao`.
    #[serde(default)]
    pub schema: Option<String>,
    /// `operator` (default: every record and field, the change history) or `public`.
    #[serde(default)]
    pub view: Option<String>,
}

/// `[registration]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub office: String,
}

/// `[mirror]`, validated (the URL file is read when the mirror starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub url_file: PathBuf,
    pub schema: String,
    pub view: MirrorView,
}

/// What a PostgreSQL mirror holds: every record and field with the change history
/// (`operator`), or only what the public catalogue shows (`public`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorView {
    Operator,
    Public,
}

impl MirrorView {
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorView::Operator => "operator",
            MirrorView::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<MirrorView> {
        match s {
            "operator" => Some(MirrorView::Operator),
            "public" => Some(MirrorView::Public),
            _ => None,
        }
    }
}

/// Whether `s` can name a PostgreSQL schema of a mirror: `[a-z_][a-z0-9_]{0,62}`.
pub fn schema_ok(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Mirror {
    /// The PostgreSQL URL from its file (which only its owner may read).
    pub fn url(&self) -> anyhow::Result<String> {
        crate::pki::check_key_permissions(&self.url_file)?;
        let text = std::fs::read_to_string(&self.url_file).with_context(|| format!("cannot read {}", self.url_file.display()))?;
        let url = text.trim().to_string();
        if url.is_empty() {
            bail!("{} holds no PostgreSQL URL", self.url_file.display());
        }
        Ok(url)
    }
}

/// `[oai]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oai {
    pub repository_identifier: String,
    pub admin_email: String,
    pub repository_name: Option<String>,
}

/// Whether `s` is a domain name as OAI identifiers need it (oai-identifier, v2.0):
/// labels of letters, digits and `-`, each starting with a letter, at least two.
fn oai_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| l.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

/// `[registration]`: on below the national node only, beside `[http]`.
pub(super) fn registration(file: &ConfigFile, http: bool) -> anyhow::Result<Option<Registration>> {
    Ok(match &file.registration {
        None => None,
        Some(_) if file.node_id == huijiao_protocol::regions::NATIONAL => {
            bail!("section `[registration]`: the national node takes no online registrations (spec §6); units register at their office's node")
        }
        Some(_) if !http => bail!("section `[registration]` needs `[http]`: units and reviewers reach it there"),
        Some(r) if r.office.trim().is_empty() || r.office.chars().count() > 100 => {
            bail!("key `registration.office`: the registering office's name, 1 to 100 characters")
        }
        Some(r) => Some(Registration { office: r.office.trim().to_string() }),
    })
}

/// `[oai]`: beside `[http]`, with a domain and an address.
pub(super) fn oai(file: &ConfigFile, http: bool) -> anyhow::Result<Option<Oai>> {
    Ok(match &file.oai {
        None => None,
        Some(_) if !http => bail!("section `[oai]` needs `[http]`: harvesters reach /oai there"),
        Some(o) if !oai_domain(o.repository_identifier.trim()) => bail!(
            "key `oai.repository_identifier`: `{}` is not a domain name like kjcg.example.gov.cn (OAI identifiers are oai:<it>:<reg_no>)",
            o.repository_identifier
        ),
        Some(o) if !o.admin_email.contains('@') || o.admin_email.trim().contains(char::is_whitespace) => {
            bail!("key `oai.admin_email`: `{}` is not an e-mail address", o.admin_email)
        }
        Some(o) => Some(Oai {
            repository_identifier: o.repository_identifier.trim().to_string(),
            admin_email: o.admin_email.trim().to_string(),
            repository_name: o.repository_name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_string),
        }),
    })
}

/// `[mirror]`: a schema name, a view, the URL file made absolute by `abs`.
pub(super) fn mirror(file: &ConfigFile, abs: &dyn Fn(&Path) -> PathBuf) -> anyhow::Result<Option<Mirror>> {
    Ok(match &file.mirror {
        None => None,
        Some(m) => {
            let schema = m.schema.clone().unwrap_or_else(|| "huijiao".into());
            if !schema_ok(&schema) {
                bail!("key `mirror.schema`: `{schema}` is not 1 to 63 of a–z, 0–9 and _ (not starting with a digit)");
            }
            let view = match m.view.as_deref() {
                None => MirrorView::Operator,
                Some(v) => MirrorView::parse(v).with_context(|| format!("key `mirror.view`: `{v}` is not operator or public"))?,
            };
            Some(Mirror { url_file: abs(&m.postgres_url_file), schema, view })
        }
    })
}
