//! The columns of spec §3: English key, Chinese name, and header matching.

/// One field of the submission format, in the order of spec §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    RegNo,
    Op,
    Title,
    Kind,
    Region,
    RegDate,
    FirstUnit,
    Units,
    Persons,
    Keywords,
    Discipline,
    Industry,
    Stage,
    Level,
    Trl,
    TaskSource,
    PlanNo,
    FiscalFunded,
    Ip,
    Transfer,
    Abstract,
    Funding,
    Benefit,
    Contact,
    Phone,
    Secret,
    EmbargoUntil,
}

impl Field {
    pub const ALL: [Field; 27] = [
        Field::RegNo,
        Field::Op,
        Field::Title,
        Field::Kind,
        Field::Region,
        Field::RegDate,
        Field::FirstUnit,
        Field::Units,
        Field::Persons,
        Field::Keywords,
        Field::Discipline,
        Field::Industry,
        Field::Stage,
        Field::Level,
        Field::Trl,
        Field::TaskSource,
        Field::PlanNo,
        Field::FiscalFunded,
        Field::Ip,
        Field::Transfer,
        Field::Abstract,
        Field::Funding,
        Field::Benefit,
        Field::Contact,
        Field::Phone,
        Field::Secret,
        Field::EmbargoUntil,
    ];

    /// The English key, used in reports, JSON and query output.
    pub fn key(self) -> &'static str {
        match self {
            Field::RegNo => "reg_no",
            Field::Op => "op",
            Field::Title => "title",
            Field::Kind => "kind",
            Field::Region => "region",
            Field::RegDate => "reg_date",
            Field::FirstUnit => "first_unit",
            Field::Units => "units",
            Field::Persons => "persons",
            Field::Keywords => "keywords",
            Field::Discipline => "discipline",
            Field::Industry => "industry",
            Field::Stage => "stage",
            Field::Level => "level",
            Field::Trl => "trl",
            Field::TaskSource => "task_source",
            Field::PlanNo => "plan_no",
            Field::FiscalFunded => "fiscal_funded",
            Field::Ip => "ip",
            Field::Transfer => "transfer",
            Field::Abstract => "abstract",
            Field::Funding => "funding",
            Field::Benefit => "benefit",
            Field::Contact => "contact",
            Field::Phone => "phone",
            Field::Secret => "secret",
            Field::EmbargoUntil => "embargo_until",
        }
    }

    /// The Chinese column name of spec §3.
    pub fn zh(self) -> &'static str {
        match self {
            Field::RegNo => "登记号",
            Field::Op => "操作",
            Field::Title => "成果名称",
            Field::Kind => "成果类型",
            Field::Region => "行政区划代码",
            Field::RegDate => "登记日期",
            Field::FirstUnit => "第一完成单位",
            Field::Units => "完成单位",
            Field::Persons => "主要完成人",
            Field::Keywords => "关键词",
            Field::Discipline => "学科分类",
            Field::Industry => "应用行业",
            Field::Stage => "成果所处阶段",
            Field::Level => "成果水平",
            Field::Trl => "技术就绪水平",
            Field::TaskSource => "任务来源",
            Field::PlanNo => "计划编号",
            Field::FiscalFunded => "财政资金",
            Field::Ip => "知识产权",
            Field::Transfer => "转化方式",
            Field::Abstract => "成果简介",
            Field::Funding => "研究经费(万元)",
            Field::Benefit => "经济效益(万元)",
            Field::Contact => "联系人",
            Field::Phone => "联系电话",
            Field::Secret => "密级",
            Field::EmbargoUntil => "延期公开至",
        }
    }

    /// Required in every upsert row (the conditional ones, industry, stage and plan_no,
    /// are checked per row).
    pub fn required(self) -> bool {
        matches!(
            self,
            Field::RegNo
                | Field::Title
                | Field::Kind
                | Field::Region
                | Field::RegDate
                | Field::FirstUnit
                | Field::Persons
                | Field::Discipline
                | Field::TaskSource
                | Field::Abstract
                | Field::Secret
        )
    }

    /// Shown by the public view (spec §3, column "public").
    pub fn public(self) -> bool {
        !matches!(self, Field::Op | Field::Funding | Field::Benefit | Field::Contact | Field::Phone | Field::Secret | Field::EmbargoUntil)
    }

    /// A list field: `;`, `；` or `、` separated in CSV/XLSX, an array in JSON.
    pub fn is_list(self) -> bool {
        matches!(self, Field::Units | Field::Persons | Field::Keywords | Field::Ip)
    }

    /// A field holding a code: a number in a spreadsheet cell must be an exact integer.
    pub fn is_code(self) -> bool {
        matches!(self, Field::RegNo | Field::Region | Field::Discipline | Field::Industry | Field::PlanNo | Field::Phone)
    }

    /// A date field: Excel date cells are accepted here.
    pub fn is_date(self) -> bool {
        matches!(self, Field::RegDate | Field::EmbargoUntil)
    }

    /// Matches a header cell or a JSON key after the normalization of spec §1.1
    /// ([`normalize_header`]): English keys in any case, Chinese names exactly, a unit
    /// in parentheses optional (`研究经费`, `研究经费(万元)`, `研究经费（万元）`).
    pub fn from_header(name: &str) -> Option<Field> {
        static NAMES: std::sync::OnceLock<std::collections::HashMap<String, Field>> = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| {
            let mut m = std::collections::HashMap::new();
            for f in Field::ALL {
                m.insert(f.key().to_string(), f);
                m.insert(f.zh().to_string(), f);
                if let Some((bare, _unit)) = f.zh().split_once('(') {
                    m.insert(bare.to_string(), f);
                }
            }
            m
        });
        let n = normalize_header(name);
        names.get(&n).copied().or_else(|| secret_like(&n).then_some(Field::Secret))
    }
}

/// A header cell as matched (spec §1.1): every kind of whitespace removed (spaces,
/// full-width spaces, line breaks inside a cell), zero-width characters removed, a
/// leading or trailing required-field marker `*` / `＊` removed, full-width
/// parentheses read as half-width, and ASCII letters lower-cased (English keys match
/// in any case).
pub fn normalize_header(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'))
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            other => other.to_ascii_lowercase(),
        })
        .collect();
    kept.trim_matches(['*', '＊']).to_string()
}

/// Fail-closed (spec v1.2 §3): a column whose name is a secrecy level is read as a 密级
/// column, so a marking in it classifies the row: after NFKC, it holds 密 together
/// with 级, 級 or 等级 (密级, 密級, 密　级, 秘密等级, 保密等级, 涉密等级, 密级（原）), or it
/// is 涉密 or 是否涉密, or (any case) `secret`, `secret level` (also `secret_level`,
/// `secret-level`), `secrecy` or `miji`. Names that merely contain 密 or "secret"
/// (保密期限, Secretary) are other columns.
fn secret_like(normalized: &str) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let n: String = normalized.nfkc().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect();
    let bare = n.split('(').next().unwrap_or(&n);
    (n.contains('密') && (n.contains('级') || n.contains('級')))
        || matches!(bare, "涉密" | "是否涉密" | "secret" | "secretlevel" | "secret_level" | "secret-level" | "secrecy" | "miji")
}

/// A column that only numbers the rows of a form (序号, or 编号 beside a 登记号
/// column): ignored without a warning.
pub fn is_serial_column(normalized: &str, has_reg_no: bool) -> bool {
    normalized == "序号" || (has_reg_no && normalized == "编号")
}

/// The column the node adds to `NAME.rejected.csv`; ignored without a warning when a
/// clerk drops the fixed file back in.
pub const ERROR_COLUMN: &str = "错误 (error)";

/// Whether a header cell is the node's own error column.
pub fn is_error_column(name: &str) -> bool {
    normalize_header(name) == normalize_header(ERROR_COLUMN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_per_spec() {
        assert_eq!(Field::from_header(" REG_NO "), Some(Field::RegNo));
        assert_eq!(Field::from_header("登记号"), Some(Field::RegNo));
        assert_eq!(Field::from_header("研究经费(万元)"), Some(Field::Funding));
        assert_eq!(Field::from_header("研究经费（万元）"), Some(Field::Funding));
        assert_eq!(Field::from_header("备注"), None);
        assert_eq!(Field::from_header("登记 号"), Some(Field::RegNo));
        assert_eq!(Field::from_header("*登记号"), Some(Field::RegNo));
        assert_eq!(Field::from_header("成果\n名称"), Some(Field::Title));
        assert_eq!(Field::from_header("研究经费"), Some(Field::Funding));
        assert_eq!(Field::from_header("经济效益（万元）"), Some(Field::Benefit));
        assert_eq!(Field::from_header("研究经费(元)"), None);
        assert_eq!(Field::from_header("密\u{3000}级＊"), Some(Field::Secret));
        assert_eq!(Field::from_header("Secret"), Some(Field::Secret));
        assert_eq!(Field::from_header("密级（原）"), Some(Field::Secret));
        assert_eq!(Field::from_header("Secret_Level"), Some(Field::Secret));
        // Secrecy columns by meaning (spec v1.2 §3), fail-closed…
        for name in [
            "密級",
            "密　级",
            "ＳＥＣＲＥＴ",
            "秘密等级",
            "保密等级",
            "涉密等级",
            "涉密",
            "是否涉密",
            "MIJI",
            "Secret Level",
            "secrecy",
            "密级（原）",
        ] {
            assert_eq!(Field::from_header(name), Some(Field::Secret), "{name}");
        }
        // …and not a column that merely speaks of secrets.
        for name in ["保密期限", "Secretary", "密码", "保密"] {
            assert_eq!(Field::from_header(name), None, "{name}");
        }
        for f in Field::ALL {
            assert_eq!(Field::from_header(f.key()), Some(f));
            assert_eq!(Field::from_header(f.zh()), Some(f));
            assert_eq!(Field::from_header(&f.key().to_uppercase()), Some(f));
        }
    }
}
