//! Prometheus' text exposition format (version 0.0.4), written by hand: both binaries read
//! their figures from counters they keep anyway at scrape time, so a registry would only
//! copy them. Also the process's own CPU time and resident memory, read from `/proc/self`.

use std::fmt::Write as _;

/// The `Content-Type` of a text exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever rises (until the process restarts); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A text exposition being written: families, each with its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// One family of an [`Exposition`]: add its samples.
pub struct Family<'a> {
    text: &'a mut String,
    name: &'a str,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family: writes its `# HELP` and `# TYPE` lines.
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { text: &mut self.text, name }
    }

    /// A family with a single sample without labels.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help).sample(&[], value);
    }

    /// `process_cpu_seconds_total` and `process_resident_memory_bytes` of this process (left
    /// out where `/proc` cannot tell).
    pub fn process(&mut self) {
        if let Some(cpu) = process_cpu_seconds() {
            self.single("process_cpu_seconds_total", Kind::Counter, "User and system CPU time spent, seconds.", cpu);
        }
        if let Some(rss) = process_resident_bytes() {
            self.single("process_resident_memory_bytes", Kind::Gauge, "Resident memory size, bytes.", rss as f64);
        }
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

impl Family<'_> {
    /// Adds a sample with these labels (name, value).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(self.name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let value = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.text, "{name}=\"{value}\"");
            }
            self.text.push('}');
        }
        self.text.push(' ');
        push_value(self.text, value);
        self.text.push('\n');
        self
    }
}

fn push_value(text: &mut String, value: f64) {
    if value.is_nan() {
        text.push_str("NaN");
    } else if value.is_infinite() {
        text.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // `Display` of f64 prints integers without a fraction and never uses an exponent.
        let _ = write!(text, "{value}");
    }
}

/// User and system CPU seconds this process has used.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) start after the last ')';
    // utime and stime are the 12th and 13th of them.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// This process's resident memory (`VmRSS`), bytes.
fn process_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim();
    kib.parse::<u64>().ok().map(|k| k * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut e = Exposition::new();
        e.family("convoy_frames_total", Kind::Counter, "Frames.\nAll of them.")
            .sample(&[("camera", "front")], 3.0)
            .sample(&[("camera", "a\"b\\c\nd"), ("unit", "u")], 0.5);
        e.single("convoy_up", Kind::Gauge, "Up.", f64::INFINITY);
        assert_eq!(
            e.finish(),
            "# HELP convoy_frames_total Frames.\\nAll of them.\n# TYPE convoy_frames_total counter\n\
             convoy_frames_total{camera=\"front\"} 3\n\
             convoy_frames_total{camera=\"a\\\"b\\\\c\\nd\",unit=\"u\"} 0.5\n\
             # HELP convoy_up Up.\n# TYPE convoy_up gauge\nconvoy_up +Inf\n"
        );
    }

    #[test]
    fn large_counters_print_without_an_exponent() {
        let mut text = String::new();
        push_value(&mut text, 123_456_789_012_345.0);
        assert_eq!(text, "123456789012345");
    }

    #[test]
    fn reads_this_process() {
        let mut e = Exposition::new();
        e.process();
        let text = e.finish();
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    }
}
