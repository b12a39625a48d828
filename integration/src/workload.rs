//! Seeded submissions for fault runs: new records, updates of earlier ones and
//! withdrawals, in every file type, for one county at a time.

use huijiao_kit::synth::{self, Generator, Rng};
use huijiao_protocol::{Date, Record};
use std::collections::BTreeMap;

/// What a county has been sent so far.
pub struct Workload {
    pub rng: Rng,
    generators: BTreeMap<String, (Generator, u32, Vec<Record>, Vec<String>)>,
    files: u64,
    /// The latest reg_date the counties' clocks accept.
    pub today: Date,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        // A day of margin, for counties whose clocks run behind.
        let today = Date::from_days(huijiao::clock::today().to_days() - 1);
        Workload { rng: Rng::new(seed), generators: BTreeMap::new(), files: 0, today }
    }

    /// The next file for `county`: (name, bytes). Mostly new records; sometimes
    /// updates of earlier ones (new versions) or withdrawals.
    pub fn next_file(&mut self, county: &str, size: u32) -> (String, Vec<u8>) {
        self.files += 1;
        let n = self.files;
        let today = self.today;
        let seed = self.rng.next_u64();
        let (g, next, live, _) =
            self.generators.entry(county.to_string()).or_insert_with(|| (Generator::new(seed), 0, Vec::new(), Vec::new()));
        let choice = if live.len() < 10 { 0 } else { self.rng.below(10) };
        match choice {
            // Updates: a new title for some earlier records.
            7 | 8 => {
                let mut picked = Vec::new();
                for _ in 0..size.min(live.len() as u32) {
                    let i = self.rng.below(live.len() as u64) as usize;
                    live[i].title = format!("{}（第{n}次修订）", live[i].title.split('（').next().unwrap_or(""));
                    picked.push(live[i].clone());
                }
                (format!("{county}-{n:05}-update.jsonl"), synth::jsonl(&picked))
            }
            // Withdrawals of a few earlier records.
            9 => {
                let mut csv = String::from("登记号,操作\n");
                for _ in 0..3.min(live.len()) {
                    let i = self.rng.below(live.len() as u64) as usize;
                    let r = live.swap_remove(i);
                    csv.push_str(&format!("{},撤销\n", r.reg_no));
                }
                (format!("{county}-{n:05}-withdraw.csv"), csv.into_bytes())
            }
            // New records, in a file type chosen at random.
            _ => {
                let recs: Vec<Record> = (0..size)
                    .map(|_| {
                        *next += 1;
                        g.record(county, *next, today)
                    })
                    .collect();
                live.extend(recs.iter().cloned());
                let rows: Vec<Vec<String>> = recs.iter().map(synth::cells).collect();
                match self.rng.below(4) {
                    0 => (format!("{county}-{n:05}.csv"), synth::csv(&rows, false)),
                    1 => (format!("{county}-{n:05}-gbk.csv"), synth::csv(&rows, true)),
                    2 => (format!("{county}-{n:05}.xlsx"), synth::xlsx(&rows)),
                    _ => (format!("{county}-{n:05}.jsonl"), synth::jsonl(&recs)),
                }
            }
        }
    }
}
