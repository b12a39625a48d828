//! Synthetic, realistic submissions for the demo, the tests and the benchmarks.
//! Deterministic for a seed, so a failing run can be replayed.

use crate::xlsx_writer::{self, Cell};
use huijiao_protocol::fields::Field;
use huijiao_protocol::record::{Kind, Record, Secret};
pub use huijiao_protocol::table::{cells, columns};
use huijiao_protocol::Date;

/// SplitMix64: small, fast, and good enough for test data and fault injection.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / ((1u64 << 53) as f64) < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const TOPICS: &[&str] = &[
    "水稻病虫害",
    "盐碱地改良",
    "智慧城市",
    "锂电池回收",
    "新型疫苗",
    "海水淡化",
    "石墨烯材料",
    "桥梁健康监测",
    "工业机器人",
    "茶叶加工",
    "生猪养殖",
    "光伏组件",
    "深度学习",
    "污水处理",
    // What the pages and docs suggest searching for (识别, 芯片, 5G基站) must exist.
    "图像识别芯片",
    "5G基站节能",
];
const SUFFIXES: &[&str] = &["关键技术研究", "示范与推广", "集成应用", "研发及产业化", "标准体系构建", "评价方法", "综合防控技术"];
const UNITS: &[&str] = &["农业科学院", "理工大学", "工程技术中心", "研究所", "科技有限公司", "师范大学", "医科大学", "设计研究院"];
const PLACES: &[&str] = &["湖北", "江苏", "四川", "广东", "新疆", "浙江", "北方", "南方", "东部", "西部"];
const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭"];
const GIVEN: &[&str] = &["伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "勇", "军", "杰", "涛", "明", "超", "霞"];
const SENTENCES: &[&str] = &[
    "本成果针对生产实践中的关键难题，系统开展了机理研究与技术攻关。",
    "建立了评价模型，形成了技术规程，在示范区推广应用效果显著。",
    "申请发明专利多项，培养研究生和技术骨干若干名，填补了国内空白。",
    "经第三方检测，主要技术指标达到同类产品先进水平，节约成本20%以上。",
    "成果已在多个省份推广应用，取得了良好的经济效益和社会效益。",
];

/// Builds records for one region.
pub struct Generator {
    pub rng: Rng,
    /// Sentences per abstract: 6 gives records of about 1 KiB of canonical JSON.
    pub abstract_sentences: usize,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator { rng: Rng::new(seed), abstract_sentences: 6 }
    }

    fn name(&mut self) -> String {
        format!("{}{}{}", self.rng.pick(SURNAMES), self.rng.pick(GIVEN), if self.rng.chance(0.5) { *self.rng.pick(GIVEN) } else { "" })
    }

    fn unit(&mut self) -> String {
        format!("{}{}", self.rng.pick(PLACES), self.rng.pick(UNITS))
    }

    /// A valid record of `region` with serial number `serial`, registered in `year`.
    pub fn record(&mut self, region: &str, serial: u32, today: Date) -> Record {
        let kind = *self.rng.pick(&[Kind::Applied, Kind::Applied, Kind::Basic, Kind::Soft]);
        let year = today.year - self.rng.below(6) as i32;
        let mut reg_date = Date::from_days(Date::new(year, 1, 1).expect("valid").to_days() + self.rng.below(365) as i64);
        if reg_date > today {
            reg_date = today;
        }
        let applied = kind == Kind::Applied;
        let task = *self.rng.pick(&["国家计划", "省部计划", "计划外"]);
        let persons = (0..1 + self.rng.below(6)).map(|_| self.name()).collect();
        let abstract_text: String = (0..self.abstract_sentences).map(|_| *self.rng.pick(SENTENCES)).collect();
        let secret = if self.rng.chance(0.15) { Secret::Internal } else { Secret::Public };
        Record {
            reg_no: format!("{region}{:04}{}{serial:06}", reg_date.year, kind.letter()),
            title: format!("{}{}", self.rng.pick(TOPICS), self.rng.pick(SUFFIXES)),
            kind,
            region: region.to_string(),
            reg_date,
            first_unit: self.unit(),
            units: (0..self.rng.below(3)).map(|_| self.unit()).collect(),
            persons,
            keywords: (0..self.rng.below(4)).map(|_| self.rng.pick(TOPICS).to_string()).collect(),
            discipline: self.rng.pick(&["413", "620", "41330", "2101010", "12010"]).to_string(),
            industry: applied.then(|| self.rng.pick(&["C27", "I6510", "A0111", "M73", "D44"]).to_string()),
            stage: applied.then(|| self.rng.pick(&["初期阶段", "中期阶段", "成熟应用阶段"]).to_string()),
            level: self.rng.chance(0.6).then(|| self.rng.pick(&["国际领先", "国际先进", "国内领先", "国内先进", "未评价"]).to_string()),
            trl: self.rng.chance(0.5).then(|| 1 + self.rng.below(9) as u8),
            task_source: task.to_string(),
            plan_no: (task != "计划外").then(|| format!("{}YFC{:06}", year, self.rng.below(1_000_000))),
            fiscal_funded: self.rng.chance(0.5).then(|| self.rng.chance(0.5)),
            ip: (0..self.rng.below(3))
                .map(|_| {
                    format!(
                        "{}:ZL{}{:07}.{}",
                        self.rng.pick(&["发明专利", "实用新型", "软件著作权", "技术秘密"]),
                        year,
                        self.rng.below(10_000_000),
                        self.rng.below(10)
                    )
                })
                .collect(),
            transfer: self
                .rng
                .chance(0.5)
                .then(|| self.rng.pick(&["自行实施", "转让", "许可", "作价投资", "合作实施", "其他"]).to_string()),
            r#abstract: abstract_text,
            funding: self.rng.chance(0.5).then(|| self.rng.below(1_000_000) as f64 / 100.0),
            benefit: self.rng.chance(0.3).then(|| self.rng.below(10_000_000) as f64 / 100.0),
            contact: self.rng.chance(0.5).then(|| self.name()),
            phone: self.rng.chance(0.5).then(|| format!("027-{:08}", self.rng.below(100_000_000))),
            secret,
            embargo_until: None,
        }
    }
}

/// A CSV table (header + rows) in UTF-8 with BOM, or GBK as Excel writes it.
pub fn csv(rows: &[Vec<String>], gbk: bool) -> Vec<u8> {
    let mut all = vec![columns().iter().map(|f| f.zh().to_string()).collect::<Vec<_>>()];
    all.extend(rows.iter().cloned());
    let utf8 = huijiao_protocol::table::write_csv(all);
    if gbk {
        let text = std::str::from_utf8(&utf8[3..]).expect("UTF-8");
        encoding_rs::GBK.encode(text).0.into_owned()
    } else {
        utf8
    }
}

/// Records as JSON Lines.
pub fn jsonl(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&r.canonical_json());
        out.push(b'\n');
    }
    out
}

/// Records as one JSON array.
pub fn json_array(records: &[Record]) -> Vec<u8> {
    serde_json::to_vec_pretty(records).expect("records serialize")
}

/// A workbook of rows aligned with [`columns`]; `reg_date` as a real date cell.
pub fn xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    let cols = columns();
    let mut sheet = vec![cols.iter().map(|f| Cell::Text(f.zh().to_string())).collect::<Vec<_>>()];
    for r in rows {
        sheet.push(
            cols.iter()
                .zip(r)
                .map(|(f, v)| match (f, Date::parse(v)) {
                    (_, _) if v.is_empty() => Cell::Empty,
                    (Field::RegDate, Ok(d)) => Cell::Date(d),
                    _ => Cell::Text(v.clone()),
                })
                .collect(),
        );
    }
    xlsx_writer::workbook(&sheet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The direct cells equal what the record's JSON says (the first implementation).
    #[test]
    fn cells_are_the_records_json() {
        let mut g = Generator::new(11);
        let today = huijiao_protocol::Date::new(2026, 11, 26).unwrap();
        for i in 0..500 {
            let mut r = g.record("420102", i, today);
            if i % 3 == 0 {
                r.funding = Some(1036.5);
                r.benefit = Some(-12.0);
                r.fiscal_funded = Some(i % 2 == 0);
                r.trl = None;
            }
            let v = serde_json::to_value(&r).unwrap();
            let from_json: Vec<String> = columns()
                .iter()
                .map(|f| match &v[f.key()] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(";"),
                    Value::Number(n) => n
                        .as_i64()
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| huijiao_protocol::validate::format_float(n.as_f64().unwrap_or(0.0))),
                    Value::Bool(b) => if *b { "是" } else { "否" }.to_string(),
                    other => other.to_string(),
                })
                .collect();
            assert_eq!(cells(&r), from_json, "record {i}");
        }
    }
}
