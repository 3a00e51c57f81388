//! The tables, the verdict on the targets, and the `## Media store` section of BENCHMARKS.md.

use std::path::Path;

use anyhow::Result;

use crate::measure::Measured;
use crate::recovery::RecoveryRow;
use crate::writers::Kind;

/// Write amplification target (device bytes ÷ media bytes, catalog included).
pub const TARGET_AMPLIFICATION: f64 = 1.02;
/// Throughput target, as a fraction of raw.
pub const TARGET_THROUGHPUT: f64 = 0.9;
/// Recovery target, seconds, whatever the store's size.
pub const TARGET_RECOVERY_S: f64 = 1.0;

/// A number taken from one measurement.
type Metric = fn(&Measured) -> Option<f64>;

/// The append results of one run: each writer's measurements, one per round.
pub struct AppendResults(pub Vec<(Kind, Vec<Measured>)>);

impl AppendResults {
    fn rounds(&self, kind: Kind) -> Option<&[Measured]> {
        self.0.iter().find(|(k, m)| *k == kind && !m.is_empty()).map(|(_, m)| m.as_slice())
    }

    /// The best of `metric` over `kind`'s rounds: the highest if `higher_is_better`, else the
    /// lowest. Other activity on the machine only ever slows a round down, costs it CPU time
    /// (caches, migrations) or adds device writes, so the best round is the least disturbed.
    fn best(&self, kind: Kind, metric: Metric, higher_is_better: bool) -> Option<f64> {
        let values = self.rounds(kind)?.iter().filter_map(metric);
        if higher_is_better { values.max_by(f64::total_cmp) } else { values.min_by(f64::total_cmp) }
    }

    /// The side-by-side table: one row per metric (best round), a column per writer, ratios
    /// to raw; then each round's throughput and device write amplification.
    pub fn table(&self) -> String {
        let rows: [(&str, Metric, bool, usize); 6] = [
            ("media throughput, MB/s", |m| Some(m.mb_per_s()), true, 1),
            ("CPU (user+sys), s per GB of media", |m| Some(m.cpu_s_per_gb()), false, 2),
            ("write amplification, process `write_bytes` ÷ media", |m| Some(m.process_amplification()), false, 4),
            ("write amplification, device sectors written ÷ media", Measured::device_amplification, false, 4),
            ("bytes its files hold ÷ media", |m| Some(m.stored_ratio()), false, 3),
            ("wall time, s", |m| Some(m.wall.as_secs_f64()), false, 1),
        ];
        let mut out = String::from(
            "| what (best of the rounds) | convoy | raw | sqlite | convoy/raw | sqlite/raw |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        for (name, metric, higher_is_better, digits) in rows {
            let value = |k| self.best(k, metric, higher_is_better);
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                cell(value(Kind::Convoy), digits),
                cell(value(Kind::Raw), digits),
                cell(value(Kind::Sqlite), digits),
                ratio(value(Kind::Convoy), value(Kind::Raw)),
                ratio(value(Kind::Sqlite), value(Kind::Raw)),
            ));
        }
        out.push_str(&self.by_round("media throughput by round, MB/s", |m| Some(m.mb_per_s()), 1));
        out.push_str(&self.by_round("device write amplification by round", Measured::device_amplification, 3));
        out
    }

    /// A row of `metric` for each round, with the ratios to raw within each round.
    fn by_round(&self, name: &str, metric: Metric, digits: usize) -> String {
        let values = |k| -> Option<Vec<f64>> { self.rounds(k)?.iter().map(metric).collect() };
        let join = |v: Option<Vec<f64>>, digits: usize| {
            v.map_or("—".to_owned(), |v| v.iter().map(|x| format!("{x:.digits$}")).collect::<Vec<_>>().join(" / "))
        };
        let ratios = |k| Some(values(k)?.iter().zip(values(Kind::Raw)?).map(|(a, b)| a / b).collect());
        format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            join(values(Kind::Convoy), digits),
            join(values(Kind::Raw), digits),
            join(values(Kind::Sqlite), digits),
            join(ratios(Kind::Convoy), 2),
            join(ratios(Kind::Sqlite), 2),
        )
    }

    /// Whether convoy meets the write amplification and throughput targets (best rounds).
    pub fn targets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(process) = self.best(Kind::Convoy, |m| Some(m.process_amplification()), false) else {
            return out;
        };
        let (what, wa) = match self.best(Kind::Convoy, Measured::device_amplification, false) {
            Some(d) => ("device", d),
            None => ("process `write_bytes`", process),
        };
        out.push(format!(
            "write amplification ≤ {TARGET_AMPLIFICATION} including the catalog: **{}** — {what} {wa:.4} \
             (process `write_bytes` {process:.4})",
            verdict(wa <= TARGET_AMPLIFICATION),
        ));
        let mbs = |k| self.best(k, |m| Some(m.mb_per_s()), true);
        if let (Some(c), Some(r)) = (mbs(Kind::Convoy), mbs(Kind::Raw)) {
            out.push(format!(
                "throughput ≥ {TARGET_THROUGHPUT} × raw: **{}** — {:.2} × raw ({c:.1} vs {r:.1} MB/s, best rounds)",
                verdict(c / r >= TARGET_THROUGHPUT),
                c / r,
            ));
        }
        out
    }
}

/// The recovery table.
pub fn recovery_table(rows: &[RecoveryRow], command: &str) -> String {
    let mut out = String::from(
        "| store | media | segment files | tail bytes scanned (all cameras) | tail records | cache | \
         `Store::open`, median of 3 | min – max | warm cache, median of 3 |\n\
         |---|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for r in rows {
        let min = r.opens.iter().min().expect("timed");
        let max = r.opens.iter().max().expect("timed");
        out.push_str(&format!(
            "| {} | {:.2} GiB | {} | {:.1} MiB | {} | {} | {:.3} s | {:.3} – {:.3} s | {:.3} s |\n",
            r.label,
            r.media as f64 / (1u64 << 30) as f64,
            r.segments,
            r.tail_bytes as f64 / (1u64 << 20) as f64,
            r.tail_records,
            if r.cold { "cold (dropped)" } else { "warm cache" },
            r.median().as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64(),
            r.warm_median().as_secs_f64(),
        ));
    }
    out.push_str(&format!("\nReproduce: `{command}`\n"));
    out
}

/// Whether recovery meets its target at every size measured.
pub fn recovery_target(rows: &[RecoveryRow]) -> Option<String> {
    let worst = rows.iter().max_by_key(|r| r.median())?;
    let s = worst.median().as_secs_f64();
    let sizes: Vec<String> = rows.iter().map(|r| format!("{} {:.3} s", r.label, r.median().as_secs_f64())).collect();
    Some(format!(
        "recovery ≤ {TARGET_RECOVERY_S} s whatever the size: **{}** — slowest {s:.3} s ({}); {}",
        verdict(s <= TARGET_RECOVERY_S),
        worst.label,
        sizes.join(", "),
    ))
}

fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_owned(), |v| format!("{v:.digits$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".to_owned(),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

const SECTION: &str = "## Media store";
const INTRO: &str = "Measured by `edge/store-bench` (`cargo build --release -p store-bench`, then \
`target/release/store-bench --help`). Each run replaces its own block below, found by its command line, \
and keeps the others and this text.\n";

/// Puts `block` (one run's report) into the `## Media store` section of the Markdown file at
/// `path`, replacing the block of an earlier run with the same `key` (its arguments).
pub fn update_file(path: &Path, key: &str, block: &str) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_owned(),
        Err(e) => return Err(e.into()),
    };
    if !text.contains(SECTION) {
        text = format!("{}\n\n{SECTION}\n\n{INTRO}", text.trim_end());
    }
    let begin = format!("<!-- store-bench run: [{key}] -->\n");
    let end = "<!-- end of store-bench run -->\n";
    let block = format!("{begin}{block}{end}");
    if let Some(start) = text.find(&begin) {
        let stop = text[start..].find(end).map_or(text.len(), |i| start + i + end.len());
        text.replace_range(start..stop, &block);
    } else {
        let section = text.find(SECTION).expect("added above");
        let after = section + SECTION.len();
        let next = text[after..].find("\n## ").map_or(text.len(), |i| after + i + 1);
        let insert = if next == text.len() { format!("\n{block}") } else { format!("{block}\n") };
        if next == text.len() && !text.ends_with('\n') {
            text.push('\n');
        }
        let at = next.min(text.len());
        text.insert_str(at, &insert);
    }
    std::fs::write(path, text)?;
    Ok(())
}
