//! Evidence (证明材料): an attachment is taken only as a PDF, OFD, JPEG or PNG judged
//! by its bytes (an OFD is a zip whose package holds `OFD.xml`), of a type in the
//! list, at most 20 MiB, under a name without a secrecy marking (spec §6.2).

use crate::store::registration::NewAttachment;
use huijiao_protocol::registration::{self, AttachmentFormat, EVIDENCE_TYPES, MAX_ATTACHMENT_BYTES};
use huijiao_protocol::report::RowError;

/// Checks one attachment and makes it ready for the store.
pub fn check(ty: &str, name: &str, bytes: Vec<u8>) -> Result<NewAttachment, RowError> {
    let ty = ty.trim();
    if !EVIDENCE_TYPES.contains(&ty) {
        return Err(registration::bad_attachment(
            &format!("类型应为 {} 之一", EVIDENCE_TYPES.join("、")),
            &format!("the type must be one of {}", EVIDENCE_TYPES.join(", ")),
        ));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(registration::bad_attachment("文件名应为 1 至 200 个字符", "the name must be 1 to 200 characters"));
    }
    if bytes.len() as u64 > MAX_ATTACHMENT_BYTES {
        return Err(too_large());
    }
    let format = match AttachmentFormat::sniff(&bytes) {
        Some(AttachmentFormat::Ofd) if !is_ofd(&bytes) => None,
        f => f,
    };
    let Some(format) = format else {
        return Err(registration::bad_attachment(
            "按文件内容判断不是 PDF、OFD、JPEG 或 PNG（与文件名无关）",
            "by its bytes it is not a PDF, OFD, JPEG or PNG (whatever its name says)",
        ));
    };
    let sha256 = huijiao_protocol::record::hex(&huijiao_protocol::record::sha256(&bytes));
    Ok(NewAttachment { ty: ty.to_string(), name: name.to_string(), format: format_name(format).into(), sha256, bytes })
}

/// The error of an attachment over the size cap.
pub fn too_large() -> RowError {
    registration::bad_attachment(
        &format!("单个附件至多 {} MiB", MAX_ATTACHMENT_BYTES >> 20),
        &format!("each attachment is at most {} MiB", MAX_ATTACHMENT_BYTES >> 20),
    )
}

pub fn format_name(f: AttachmentFormat) -> &'static str {
    match f {
        AttachmentFormat::Pdf => "pdf",
        AttachmentFormat::Ofd => "ofd",
        AttachmentFormat::Jpeg => "jpeg",
        AttachmentFormat::Png => "png",
    }
}

pub fn format_of(name: &str) -> Option<AttachmentFormat> {
    match name {
        "pdf" => Some(AttachmentFormat::Pdf),
        "ofd" => Some(AttachmentFormat::Ofd),
        "jpeg" => Some(AttachmentFormat::Jpeg),
        "png" => Some(AttachmentFormat::Png),
        _ => None,
    }
}

/// Whether a zip is an OFD package: its root holds `OFD.xml`.
fn is_ofd(bytes: &[u8]) -> bool {
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).is_ok_and(|z| z.file_names().any(|n| n.eq_ignore_ascii_case("OFD.xml")))
}

/// Standard base64 (RFC 4648, padding optional, whitespace ignored), as the API's
/// inline attachments carry their bytes; `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let body = clean.strip_suffix(b"==").or_else(|| clean.strip_suffix(b"=")).unwrap_or(&clean);
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 2);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_what_programs_send() {
        assert_eq!(base64_decode("JVBERi0xLjc=").unwrap(), b"%PDF-1.7");
        assert_eq!(base64_decode("JVBERi0xLjc").unwrap(), b"%PDF-1.7", "padding optional");
        assert_eq!(base64_decode("aGk=\n").unwrap(), b"hi");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a!bc").is_none() && base64_decode("abcde").is_none());
    }

    #[test]
    fn attachments_are_judged_by_bytes_type_and_size() {
        assert_eq!(check("验收证书", "证书.pdf", b"%PDF-1.7\n...".to_vec()).unwrap().format, "pdf");
        assert_eq!(check("其他", "照片.jpg", vec![0xFF, 0xD8, 0xFF, 0xE0, 0]).unwrap().format, "jpeg");
        for (ty, name, bytes) in [
            ("验收证书", "x.pdf", b"<html><script>alert(1)</script>".to_vec()),
            ("验收证书", "x.pdf", b"MZ\x90\x00 an executable".to_vec()),
            ("证书", "x.pdf", b"%PDF-1.7".to_vec()),
            ("验收证书", "", b"%PDF-1.7".to_vec()),
            ("验收证书", "x.ofd", b"PK\x03\x04 not a real zip".to_vec()),
        ] {
            assert_eq!(check(ty, name, bytes).unwrap_err().code, "bad_attachment", "{ty} {name}");
        }
        let mut big = b"%PDF-".to_vec();
        big.resize(MAX_ATTACHMENT_BYTES as usize + 1, b' ');
        assert_eq!(check("验收证书", "big.pdf", big).unwrap_err().code, "bad_attachment");
    }

    #[test]
    fn an_ofd_is_a_zip_with_ofd_xml() {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            z.start_file("OFD.xml", zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut z, b"<ofd:OFD/>").unwrap();
            z.finish().unwrap();
        }
        assert_eq!(check("鉴定证书", "证书.ofd", buf.into_inner()).unwrap().format, "ofd");
    }
}
