//! A strict reader of Prometheus' text exposition format (version 0.0.4), for tests and
//! benchmarks that scrape `/metrics`: every sample must belong to a family announced by a
//! `# TYPE` line, names and labels must be well-formed, values must parse.

use std::collections::BTreeMap;

/// The samples of one scrape, by series (`name` and its labels, sorted).
#[derive(Debug, Default, Clone)]
pub struct Samples {
    series: BTreeMap<(String, Vec<(String, String)>), f64>,
    types: BTreeMap<String, String>,
}

/// Why a text is not a valid exposition.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}: {text:?}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: &'static str,
    /// The line.
    pub text: String,
}

impl Samples {
    /// The value of the series `name` with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        key.sort();
        self.series.get(&(name.to_owned(), key)).copied()
    }

    /// The type (`counter`, `gauge`, …) announced for the family `name`.
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    /// Every series of family `name`: its labels and value.
    pub fn family(&self, name: &str) -> Vec<(&[(String, String)], f64)> {
        self.series.iter().filter(|((n, _), _)| n == name).map(|((_, l), v)| (l.as_slice(), *v)).collect()
    }

    /// How many series there are.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Reads `{a="x",b="y"}` at the start of `s`; the labels and the rest of `s`.
fn labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut rest = s.strip_prefix('{')?;
    let mut out = Vec::new();
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Some((out, r));
        }
        let (name, r) = rest.split_once('=')?;
        if !is_name(name) {
            return None;
        }
        let mut chars = r.strip_prefix('"')?.char_indices();
        let mut text = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => text.push('\n'),
                    c @ ('\\' | '"') => text.push(c),
                    _ => return None,
                },
                (_, c) => text.push(c),
            }
        };
        out.push((name.to_owned(), text));
        rest = &r[1 + end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Reads a whole exposition.
pub fn parse(text: &str) -> Result<Samples, ParseError> {
    let mut samples = Samples::default();
    for (i, line) in text.lines().enumerate() {
        let err = |message| ParseError { line: i + 1, message, text: line.to_owned() };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            if words.first() == Some(&"TYPE") {
                let [_, name, kind] = words[..] else { return Err(err("a TYPE line is `# TYPE NAME KIND`")) };
                if !matches!(kind, "counter" | "gauge" | "histogram" | "summary" | "untyped") || !is_name(name) {
                    return Err(err("unknown type or bad name"));
                }
                if samples.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(err("a family announced twice"));
                }
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(err("bad metric name"));
        }
        let (mut labels, rest) = match line[name_end..].starts_with('{') {
            true => labels(&line[name_end..]).ok_or_else(|| err("bad labels"))?,
            false => (Vec::new(), &line[name_end..]),
        };
        let mut words = rest.split_whitespace();
        let v = words.next().and_then(value).ok_or_else(|| err("bad value"))?;
        if words.next().is_some_and(|t| t.parse::<i64>().is_err()) || words.next().is_some() {
            return Err(err("junk after the value"));
        }
        if !samples.types.contains_key(name) {
            return Err(err("a sample before its family's TYPE line"));
        }
        labels.sort();
        if samples.series.insert((name.to_owned(), labels), v).is_some() {
            return Err(err("a series given twice"));
        }
    }
    Ok(samples)
}

/// GETs `url` (a `/metrics` endpoint) and parses it.
pub fn scrape(url: &str) -> anyhow::Result<Samples> {
    let text = ureq::get(url).call()?.body_mut().read_to_string()?;
    Ok(parse(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_families_labels_and_escapes() {
        let s = parse(
            "# HELP a_total A.\n# TYPE a_total counter\na_total{camera=\"fr\\\"o\\\\nt\",unit=\"u\"} 3\n\
             # TYPE b gauge\nb +Inf\nb{x=\"\"} 1.5e3 1700000000000\n",
        )
        .unwrap();
        assert_eq!(s.get("a_total", &[("unit", "u"), ("camera", "fr\"o\\nt")]), Some(3.0));
        assert_eq!(s.get("b", &[]), Some(f64::INFINITY));
        assert_eq!(s.get("b", &[("x", "")]), Some(1500.0));
        assert_eq!(s.kind("a_total"), Some("counter"));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn refuses_what_prometheus_would() {
        for bad in [
            "a 1\n",
            "# TYPE a gauge\na{b=\"c} 1\n",
            "# TYPE a gauge\na one\n",
            "# TYPE a gauge\na 1\na 2\n",
            "# TYPE 1a gauge\n",
            "# TYPE a gauge\na{b=c} 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
