//! The federation PKI: one CA, one certificate per node, a CRL.
//!
//! A node's identity is its region code, carried in its certificate as the DNS subject
//! alternative name `<node id>.node.huijiao` (and, for people reading certificates, in
//! the common name `huijiao node <node id>`). A child connects to its parent with the server
//! name `<parent id>.node.huijiao`, so ordinary certificate verification proves it
//! reached the parent it expects; a parent reads the child's id from the same SAN of
//! the verified client certificate.
//!
//! CA folder layout (`huijiao pki init --dir CA_DIR`):
//! `ca.crt`, `ca.key` (0600), `crl.pem` (always present, possibly empty — rustls needs
//! a CRL for every issuer to decide revocation), `issued.tsv` (serial, node, not after),
//! `revoked.tsv` (serial, revoked at), `crl_number`.

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

pub const SAN_SUFFIX: &str = ".node.huijiao";

/// The DNS name a node's certificate carries and its children connect to.
pub fn node_dns_name(node_id: &str) -> String {
    format!("{node_id}{SAN_SUFFIX}")
}

fn at(secs: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).context("time out of range")
}

fn now_secs() -> i64 {
    crate::clock::now_ms() / 1000
}

/// Refuses a private key that its group or others could read.
pub fn check_key_permissions(path: &Path) -> anyhow::Result<()> {
    let mode = std::fs::metadata(path).with_context(|| format!("cannot read key {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!("key file {} is readable by group or others (mode {:o}); run: chmod 600 {}", path.display(), mode & 0o777, path.display());
    }
    Ok(())
}

/// `n` bytes from the kernel's random source.
pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).context("cannot read /dev/urandom")?;
    Ok(b)
}

fn random_serial() -> anyhow::Result<Vec<u8>> {
    let mut b = random_bytes(16)?;
    b[0] &= 0x7F; // positive
    b[0] |= 0x01; // and no leading zero byte
    Ok(b)
}

pub fn hex_serial(bytes: &[u8]) -> String {
    huijiao_protocol::record::hex(bytes)
}

fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    let s = s.trim().trim_start_matches("0x").replace(':', "");
    if s.is_empty() || s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("`{s}` is not a hex serial");
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).with_context(|| format!("`{s}` is not a hex serial"))).collect()
}

/// `huijiao pki init`: a new federation CA with an empty CRL.
pub fn init(dir: &Path) -> anyhow::Result<()> {
    if dir.join("ca.key").exists() {
        bail!("{} already holds a CA; refusing to overwrite it", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    // A name of its own: a certificate from another federation's CA then reads as
    // "unknown issuer", never as a CA with the same name.
    let tag = hex_serial(&random_serial()?[..4]);
    params.distinguished_name.push(DnType::CommonName, format!("huijiao federation CA {tag}"));
    params.distinguished_name.push(DnType::OrganizationName, "huijiao");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = at(now_secs() - 3600)?;
    params.not_after = at(now_secs() + 20 * 365 * 86_400)?;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let cert = params.self_signed(&key)?;
    crate::fsx::write_private(&dir.join("ca.key"), key.serialize_pem().as_bytes())?;
    crate::fsx::write(&dir.join("ca.crt"), cert.pem())?;
    crate::fsx::write(&dir.join("issued.tsv"), "serial\tnode\tnot_after\n")?;
    crate::fsx::write(&dir.join("revoked.tsv"), "serial\trevoked_at\n")?;
    write_crl(dir, 1)?;
    Ok(())
}

fn load_issuer(ca: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let key_path = ca.join("ca.key");
    check_key_permissions(&key_path)?;
    let key_pem = std::fs::read_to_string(&key_path).with_context(|| format!("cannot read the CA key {}", key_path.display()))?;
    let key = KeyPair::from_pem(&key_pem).with_context(|| format!("invalid CA key {}", key_path.display()))?;
    let pem = std::fs::read_to_string(ca.join("ca.crt")).with_context(|| format!("no CA at {} (run huijiao pki init)", ca.display()))?;
    Issuer::from_ca_cert_pem(&pem, key).context("invalid CA certificate")
}

/// `huijiao pki issue`: a node certificate and key, valid from an hour ago (clock
/// skew) for `days` days. Returns the certificate and key paths.
pub fn issue(ca: &Path, node_id: &str, out: &Path, days: u32) -> anyhow::Result<(PathBuf, PathBuf)> {
    if days == 0 {
        bail!("--days 0 would issue a certificate that is already expired; give the validity in days (default 825)");
    }
    let now = now_secs();
    issue_between(ca, node_id, out, now - 3600, now + i64::from(days) * 86_400)
}

/// Issues with an explicit validity window (tests use it for expired certificates).
pub fn issue_between(ca: &Path, node_id: &str, out: &Path, not_before: i64, not_after: i64) -> anyhow::Result<(PathBuf, PathBuf)> {
    if !huijiao_protocol::regions::is_six_digits(node_id) {
        bail!("node id `{node_id}` is not a 6-digit region code");
    }
    let issuer = load_issuer(ca)?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![node_dns_name(node_id)])?;
    // No URI name beside the DNS one: certificates issued before carried
    // `urn:huijiao:node:<id>`, which Python's service_identity (and so aioquic) cannot
    // parse ("too many values to unpack") and then refuses the whole certificate.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, format!("huijiao node {node_id}"));
    params.distinguished_name.push(DnType::OrganizationName, "huijiao");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = at(not_before)?;
    params.not_after = at(not_after)?;
    let serial = random_serial()?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (cert_path, key_path) = (out.join(format!("{node_id}.crt")), out.join(format!("{node_id}.key")));
    crate::fsx::write_private(&key_path, key.serialize_pem().as_bytes())?;
    crate::fsx::write(&cert_path, cert.pem())?;
    let issued_path = ca.join("issued.tsv");
    let mut issued =
        std::fs::OpenOptions::new().append(true).open(&issued_path).with_context(|| format!("cannot open {}", issued_path.display()))?;
    writeln!(issued, "{}\t{node_id}\t{not_after}", hex_serial(&serial))?;
    Ok((cert_path, key_path))
}

/// `huijiao pki renew`: a new key and certificate for a node, replacing the files in
/// `out` (each written beside and renamed over, the key first). The old certificate
/// stays valid until it expires or is revoked, so a node keeps working until it
/// reloads (SIGHUP) and picks up the new pair.
pub fn renew(ca: &Path, node_id: &str, out: &Path, days: u32) -> anyhow::Result<(PathBuf, PathBuf)> {
    let staging = out.join(format!(".renew-{node_id}"));
    let _ = std::fs::remove_dir_all(&staging);
    let (crt, key) = issue(ca, node_id, &staging, days)?;
    let (final_crt, final_key) = (out.join(format!("{node_id}.crt")), out.join(format!("{node_id}.key")));
    std::fs::rename(&key, &final_key).with_context(|| format!("cannot replace {}", final_key.display()))?;
    std::fs::rename(&crt, &final_crt).with_context(|| format!("cannot replace {}", final_crt.display()))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok((final_crt, final_key))
}

/// One certificate a CA issued, as `pki list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issued {
    pub serial: String,
    pub node: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    pub revoked: bool,
}

/// `huijiao pki list`: every certificate the CA issued, oldest first.
pub fn list(ca: &Path) -> anyhow::Result<Vec<Issued>> {
    let issued =
        std::fs::read_to_string(ca.join("issued.tsv")).with_context(|| format!("no CA at {} (run huijiao pki init)", ca.display()))?;
    let revoked = std::fs::read_to_string(ca.join("revoked.tsv")).unwrap_or_default();
    let revoked: Vec<&str> = revoked.lines().skip(1).filter_map(|l| l.split('\t').next()).collect();
    Ok(issued
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Some(Issued {
                serial: c.first()?.to_string(),
                node: c.get(1)?.to_string(),
                not_after: c.get(2)?.parse().ok()?,
                revoked: revoked.contains(c.first()?),
            })
        })
        .collect())
}

/// Days from now until `not_after` (seconds since the epoch); negative when past.
pub fn days_left(not_after: i64) -> i64 {
    (not_after - now_secs()).div_euclid(86_400)
}

/// Certificates expiring within this many days are warned about (log, status, metrics).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What to revoke.
pub enum RevokeTarget {
    /// Every certificate issued to this node.
    Node(String),
    Serial(String),
}

/// `huijiao pki revoke`: adds certificates to `revoked.tsv` and writes a new CRL.
/// Returns the serials newly revoked.
pub fn revoke(ca: &Path, target: RevokeTarget) -> anyhow::Result<Vec<String>> {
    let issued = std::fs::read_to_string(ca.join("issued.tsv")).with_context(|| format!("no CA at {}", ca.display()))?;
    let serials: Vec<String> = match &target {
        RevokeTarget::Node(id) => issued
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').collect::<Vec<_>>().get(..2).map(|c| (c[0].to_string(), c[1] == id)))
            .filter(|(_, m)| *m)
            .map(|(s, _)| s)
            .collect(),
        RevokeTarget::Serial(s) => vec![hex_serial(&parse_hex(s)?)],
    };
    if serials.is_empty() {
        bail!("no certificate matches; nothing revoked");
    }
    let revoked_text = std::fs::read_to_string(ca.join("revoked.tsv")).unwrap_or_default();
    let mut newly = Vec::new();
    let revoked_path = ca.join("revoked.tsv");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&revoked_path)
        .with_context(|| format!("cannot open {}", revoked_path.display()))?;
    for s in serials {
        if !revoked_text.lines().any(|l| l.split('\t').next() == Some(s.as_str())) {
            writeln!(f, "{s}\t{}", now_secs()).with_context(|| format!("cannot write {}", revoked_path.display()))?;
            newly.push(s);
        }
    }
    let number: u64 = std::fs::read_to_string(ca.join("crl_number")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1);
    write_crl(ca, number + 1)?;
    Ok(newly)
}

fn write_crl(ca: &Path, number: u64) -> anyhow::Result<()> {
    let issuer = load_issuer(ca)?;
    let revoked_text = std::fs::read_to_string(ca.join("revoked.tsv")).unwrap_or_default();
    let mut revoked_certs = Vec::new();
    for line in revoked_text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 2 {
            continue;
        }
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&parse_hex(cols[0])?),
            revocation_time: at(cols[1].parse().unwrap_or_else(|_| now_secs()))?,
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: at(now_secs() - 60)?,
        next_update: at(now_secs() + 365 * 86_400)?,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    crate::fsx::write_atomic(&ca.join("crl.pem"), crl.pem()?)?;
    crate::fsx::write(&ca.join("crl_number"), number.to_string())?;
    Ok(())
}

pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read certificate {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid certificate {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    check_key_permissions(path)?;
    PrivateKeyDer::from_pem_file(path).with_context(|| format!("invalid private key {}", path.display()))
}

pub fn load_crls(path: &Path) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    CertificateRevocationListDer::pem_file_iter(path)
        .with_context(|| format!("cannot read CRL {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid CRL {}", path.display()))
}

/// The node id a certificate names, from its `<id>.node.huijiao` DNS SAN.
pub fn node_id_of(cert: &CertificateDer<'_>) -> anyhow::Result<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| anyhow::anyhow!("unparsable certificate: {e}"))?;
    let san = c
        .subject_alternative_name()
        .map_err(|e| anyhow::anyhow!("bad SAN extension: {e}"))?
        .context("certificate has no subject alternative name")?;
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::DNSName(d) = name {
            if let Some(id) = d.strip_suffix(SAN_SUFFIX) {
                if huijiao_protocol::regions::is_six_digits(id) {
                    return Ok(id.to_string());
                }
            }
        }
    }
    bail!("certificate names no huijiao node (no DNS name <id>{SAN_SUFFIX})")
}

/// The certificate's serial number, hex.
/// When a certificate expires, seconds since the Unix epoch.
pub fn not_after_of(cert: &CertificateDer<'_>) -> anyhow::Result<i64> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| anyhow::anyhow!("unparsable certificate: {e}"))?;
    Ok(c.validity().not_after.timestamp())
}

/// When the first certificate of a PEM file expires, seconds since the Unix epoch.
pub fn expiry_of_file(path: &Path) -> anyhow::Result<i64> {
    let certs = load_certs(path)?;
    not_after_of(certs.first().with_context(|| format!("no certificate in {}", path.display()))?)
}

pub fn serial_of(cert: &CertificateDer<'_>) -> anyhow::Result<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| anyhow::anyhow!("unparsable certificate: {e}"))?;
    Ok(hex_serial(c.raw_serial()))
}

/// The serials a CRL file lists, hex.
pub fn revoked_serials(crl_path: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for crl in load_crls(crl_path)? {
        let (_, c) = x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| anyhow::anyhow!("unparsable CRL: {e}"))?;
        out.extend(c.iter_revoked_certificates().map(|r| hex_serial(r.raw_serial())));
    }
    Ok(out)
}

/// Whether a private key is the one of a certificate: the public key the certificate
/// carries is the key's own.
pub fn check_key_matches(cert: &CertificateDer<'_>, key: &PrivateKeyDer<'_>) -> anyhow::Result<()> {
    let pair = KeyPair::try_from(key).context("the key cannot be read as a key pair")?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).context("the certificate cannot be parsed")?;
    if parsed.public_key().subject_public_key.data.as_ref() != rcgen::PublicKeyData::der_bytes(&pair) {
        anyhow::bail!("the key's public key is not the certificate's");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_issue_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init(&ca).unwrap();
        assert!(init(&ca).is_err(), "never overwrites a CA");
        check_key_permissions(&ca.join("ca.key")).unwrap();
        let (crt, key) = issue(&ca, "420102", &dir.path().join("n"), 30).unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let cert = &load_certs(&crt).unwrap()[0];
        assert_eq!(node_id_of(cert).unwrap(), "420102");
        load_key(&key).unwrap();
        assert!(revoked_serials(&ca.join("crl.pem")).unwrap().is_empty());
        let serial = serial_of(cert).unwrap();
        assert_eq!(revoke(&ca, RevokeTarget::Node("420102".into())).unwrap(), vec![serial.clone()]);
        assert_eq!(revoked_serials(&ca.join("crl.pem")).unwrap(), vec![serial.clone()]);
        assert!(revoke(&ca, RevokeTarget::Serial(serial)).unwrap().is_empty(), "revoking twice changes nothing");
        assert!(revoke(&ca, RevokeTarget::Node("110101".into())).is_err());
    }

    #[test]
    fn renew_list_and_no_certificate_born_expired() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init(&ca).unwrap();
        let out = dir.path().join("n");
        let e = issue(&ca, "420102", &out, 0).unwrap_err().to_string();
        assert!(e.contains("--days 0"), "{e}");
        let (crt, _) = issue(&ca, "420102", &out, 30).unwrap();
        let first = serial_of(&load_certs(&crt).unwrap()[0]).unwrap();
        let (crt, key) = renew(&ca, "420102", &out, 400).unwrap();
        let second = serial_of(&load_certs(&crt).unwrap()[0]).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!((399..=400).contains(&days_left(expiry_of_file(&crt).unwrap())));
        revoke(&ca, RevokeTarget::Serial(first.clone())).unwrap();
        let all = list(&ca).unwrap();
        assert_eq!(all.iter().map(|c| (c.serial.clone(), c.revoked)).collect::<Vec<_>>(), vec![(first, true), (second, false)]);
        assert!(
            std::fs::read_dir(&out).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().starts_with(".renew")),
            "no staging left"
        );
    }

    #[test]
    fn a_node_certificate_names_the_node_by_dns_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init(&ca).unwrap();
        issue(&ca, "420102", dir.path(), 30).unwrap();
        let cert = load_certs(&dir.path().join("420102.crt")).unwrap().remove(0);
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
        let san = parsed.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san.value.general_names.iter().map(|n| format!("{n:?}")).collect();
        assert_eq!(names, vec!["DNSName(\"420102.node.huijiao\")".to_string()], "other TLS stacks parse this");
        assert_eq!(node_id_of(&cert).unwrap(), "420102");
    }

    #[test]
    fn a_key_must_be_its_certificates_own() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca");
        init(&ca).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        issue(&ca, "420102", &a, 30).unwrap();
        issue(&ca, "420102", &b, 30).unwrap();
        let cert = load_certs(&a.join("420102.crt")).unwrap().remove(0);
        assert!(check_key_matches(&cert, &load_key(&a.join("420102.key")).unwrap()).is_ok());
        assert!(check_key_matches(&cert, &load_key(&b.join("420102.key")).unwrap()).is_err(), "another issue's key");
    }

    #[test]
    fn malformed_serials_are_errors() {
        for s in ["中文", "0xZZ", "abc", ""] {
            assert!(parse_hex(s).is_err(), "{s:?}");
        }
        assert_eq!(parse_hex("0x0a:FF").unwrap(), vec![10, 255]);
    }

    #[test]
    fn world_readable_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        std::fs::write(&p, "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_key_permissions(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
    }
}
