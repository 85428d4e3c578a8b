//! The results of a run: gathered per row and contender, printed as one table, written
//! as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cell::Report;
use crate::error::BenchError;
use crate::scenarios::{Contender, Group, MEDIATOR_DIRECT, MEDIATOR_SEND, Row, Workload};
use crate::stats::{Summary, group_digits};
use crate::targets;

/// Every figure of every repetition, by row id and contender.
#[derive(Debug, Clone, Default)]
pub(crate) struct Results {
    groups: Vec<Group>,
    values: BTreeMap<(&'static str, Contender), Vec<f64>>,
    notes: BTreeMap<(&'static str, Contender, String), Vec<f64>>,
}

impl Results {
    pub(crate) fn new(groups: Vec<Group>) -> Self {
        Results { groups, ..Results::default() }
    }

    /// Adds what one cell reported; an id outside the group is a bug, reported.
    pub(crate) fn add(&mut self, group: Group, contender: Contender, report: &Report) -> Result<(), BenchError> {
        let rows = group.rows();
        let id_of = |id: &str| {
            rows.iter().map(|r| r.id).find(|r| *r == id).ok_or_else(|| {
                BenchError::Check(format!(
                    "{} reported `{id}`, which is not a row of `{}`",
                    contender.key(),
                    group.name()
                ))
            })
        };
        for (id, value) in &report.figures {
            self.values.entry((id_of(id)?, contender)).or_default().push(*value);
        }
        for (id, value, what) in &report.notes {
            self.notes.entry((id_of(id)?, contender, what.clone())).or_default().push(*value);
        }
        Ok(())
    }

    pub(crate) fn has_group(&self, group: Group) -> bool {
        self.groups.contains(&group)
    }

    pub(crate) fn summary(&self, id: &str, contender: Contender) -> Option<Summary> {
        self.values.iter().find(|((i, c), _)| *i == id && *c == contender).and_then(|(_, v)| Summary::of(v))
    }

    fn rows(&self) -> impl Iterator<Item = (Group, Row)> + '_ {
        self.groups.iter().flat_map(|&g| g.rows().into_iter().map(move |r| (g, r)))
    }

    /// `ours / peer` of the medians, when both have a figure.
    pub(crate) fn ratio(&self, id: &str, peer: Contender) -> Option<f64> {
        let ours = self.summary(id, Contender::Ours)?.median;
        let theirs = self.summary(id, peer)?.median;
        (theirs != 0.0).then(|| ours / theirs)
    }

    /// The table printed at the end of a run.
    pub(crate) fn table(&self, w: &Workload) -> String {
        let header: Vec<String> = ["scenario", "unit", "cqrs-ddd", "cqrs-es", "sqlx", "ours/cqrs-es", "ours/sqlx"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut lines: Vec<Line> = vec![Line::Cells(header)];
        for &group in &self.groups {
            lines.push(Line::Heading(group.title(w)));
            for row in group.rows() {
                let mut cells = vec![row.id.to_owned(), row.unit.name().to_owned()];
                for c in Contender::ALL {
                    cells.push(self.cell(group, row.id, c));
                }
                for peer in [Contender::CqrsEs, Contender::Sqlx] {
                    cells.push(self.ratio_cell(group, row.id, peer));
                }
                lines.push(Line::Cells(cells));
            }
        }
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                lines
                    .iter()
                    .filter_map(|l| if let Line::Cells(c) = l { Some(width(&c[i])) } else { None })
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = format!(
            "cqrs-ddd-bench{}: median of {} repetitions (min-max); ratio = cqrs-ddd / peer, of the medians\n\n",
            if w.quick { " --quick" } else { "" },
            w.reps
        );
        for line in &lines {
            match line {
                Line::Heading(h) => {
                    let _ = writeln!(out, "\n{h}");
                }
                Line::Cells(cells) => {
                    let padded: Vec<String> = cells
                        .iter()
                        .zip(&widths)
                        .enumerate()
                        .map(|(i, (c, &wd))| {
                            let pad = " ".repeat(wd - width(c));
                            if i < 2 { format!("{c}{pad}") } else { format!("{pad}{c}") }
                        })
                        .collect();
                    let _ = writeln!(out, "{}", padded.join("  ").trim_end());
                }
            }
        }
        out.push_str(&self.footer(w));
        out
    }

    fn cell(&self, group: Group, id: &str, c: Contender) -> String {
        if !group.contenders().contains(&c) {
            return "-".to_owned();
        }
        match self.summary(id, c) {
            Some(s) => format!("{} ({}-{})", num(s.median), num(s.min), num(s.max)),
            None => "n/a".to_owned(),
        }
    }

    fn ratio_cell(&self, group: Group, id: &str, peer: Contender) -> String {
        if !group.contenders().contains(&peer) {
            return "-".to_owned();
        }
        self.ratio(id, peer).map_or_else(|| "n/a".to_owned(), |r| format!("{}x", ratio(r)))
    }

    fn footer(&self, w: &Workload) -> String {
        let mut out = String::from(
            "\ncqrs-es: cqrs-es 0.5 on its MemStore in memory, postgres-es 0.5 on Postgres; sqlx: plain sqlx 0.8 on the \
             same rows.\nn/a: no figure for this run; -: not a contender \
             here.\nRatios: for /s a ratio above 1 means cqrs-ddd is faster; for us, ns, ms and MiB, below 1 means it is \
             faster or smaller.\n",
        );
        if let (Some(send), Some(direct)) =
            (self.summary(MEDIATOR_SEND, Contender::Ours), self.summary(MEDIATOR_DIRECT, Contender::Ours))
        {
            let _ = writeln!(
                out,
                "Mediator overhead (send - direct call, medians): {} ns per call.",
                num(send.median - direct.median)
            );
        }
        for (_, row) in self.rows() {
            let mut by_what: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for ((id, c, what), values) in &self.notes {
                if *id == row.id
                    && let Some(s) = Summary::of(values)
                {
                    let range = if count(s.min) == count(s.max) {
                        count(s.min)
                    } else {
                        format!("{}-{}", count(s.min), count(s.max))
                    };
                    by_what.entry(what).or_default().push(format!("{} {range}", c.key()));
                }
            }
            for (what, parts) in by_what {
                let _ = writeln!(out, "{}: {} {what}.", row.id, parts.join(", "));
            }
        }
        if let Some(cuts) = w.cuts() {
            let _ = writeln!(out, "{cuts}.");
        }
        let checks = targets::check(self);
        if !checks.is_empty() {
            out.push_str("\nTargets:\n");
            for t in checks {
                let _ = writeln!(out, "  {t}");
            }
        }
        out
    }

    /// The stable JSON shape: `{"scenarios": [{"id", "unit", "higher_is_better",
    /// "results": {"cqrs-ddd": {"median", "min", "max"}, ..}}]}`, contenders without a
    /// figure left out.
    pub(crate) fn json(&self) -> String {
        #[derive(Serialize)]
        struct Out {
            scenarios: Vec<Scenario>,
        }
        #[derive(Serialize)]
        struct Scenario {
            id: &'static str,
            unit: &'static str,
            higher_is_better: bool,
            results: BTreeMap<&'static str, Figure>,
        }
        #[derive(Serialize)]
        struct Figure {
            median: f64,
            min: f64,
            max: f64,
        }
        let scenarios = self
            .rows()
            .map(|(_, row)| Scenario {
                id: row.id,
                unit: row.unit.name(),
                higher_is_better: row.unit.higher_is_better(),
                results: Contender::ALL
                    .into_iter()
                    .filter_map(|c| {
                        self.summary(row.id, c).map(|s| (c.key(), Figure { median: s.median, min: s.min, max: s.max }))
                    })
                    .collect(),
            })
            .collect();
        // Plain data (strings, finite floats, maps): serialising it cannot fail.
        serde_json::to_string_pretty(&Out { scenarios }).unwrap_or_default() + "\n"
    }
}

enum Line {
    Heading(String),
    Cells(Vec<String>),
}

/// A ratio with two significant digits at least: `751`, `12.3`, `0.84`, `0.00015`.
pub(crate) fn ratio(r: f64) -> String {
    if !r.is_finite() || r >= 0.1 {
        return num(r);
    }
    let mut decimals = 2;
    while decimals < 9 && r < 10f64.powi(1 - i32::try_from(decimals).unwrap_or(9)) {
        decimals += 1;
    }
    format!("{r:.decimals$}")
}

/// A count as an integer, anything else as [`num`].
fn count(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { num(v).split('.').next().unwrap_or_default().to_owned() } else { num(v) }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Three significant digits or so, thousands grouped: `123,456`, `123`, `12.3`, `1.23`.
pub(crate) fn num(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    let (sign, rest) = s.strip_prefix('-').map_or(("", s.as_str()), |r| ("-", r));
    match rest.split_once('.') {
        Some((int, frac)) => format!("{sign}{}.{frac}", group_digits(int)),
        None => format!("{sign}{}", group_digits(rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(figures: &[(&str, f64)]) -> Report {
        Report {
            available: true,
            figures: figures.iter().map(|(i, v)| ((*i).to_owned(), *v)).collect(),
            ..Report::default()
        }
    }

    #[test]
    fn numbers_keep_about_three_digits() {
        assert_eq!(num(1_234_567.8), "1,234,568");
        assert_eq!(num(123.4), "123");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(0.1234), "0.123");
        assert_eq!(num(-1_500.0), "-1,500");
    }

    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(ratio(751.2), "751");
        assert_eq!(ratio(0.84), "0.840");
        assert_eq!(ratio(0.084), "0.084");
        assert_eq!(ratio(0.000_15), "0.00015");
    }

    #[test]
    fn json_has_the_stable_shape_and_leaves_out_missing_contenders() {
        let mut r = Results::new(vec![Group::PgSeq]);
        for v in [10.0, 30.0, 20.0] {
            r.add(Group::PgSeq, Contender::Sqlx, &report(&[("pg_seq", v)])).unwrap();
        }
        r.add(Group::PgSeq, Contender::CqrsEs, &report(&[("pg_seq", 5.0), ("pg_seq_p99", 900.0)])).unwrap();
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        let scenarios = json["scenarios"].as_array().unwrap();
        assert_eq!(scenarios.len(), 3);
        let seq = &scenarios[0];
        assert_eq!(seq["id"], "pg_seq");
        assert_eq!(seq["unit"], "commands/s");
        assert_eq!(seq["higher_is_better"], true);
        assert_eq!(seq["results"]["sqlx"], serde_json::json!({"median": 20.0, "min": 10.0, "max": 30.0}));
        assert_eq!(seq["results"]["cqrs-es"]["median"], 5.0);
        assert!(seq["results"].get("cqrs-ddd").is_none());
        assert_eq!(scenarios[2]["id"], "pg_seq_p99");
        assert_eq!(scenarios[2]["higher_is_better"], false);
        assert_eq!(scenarios[1]["results"], serde_json::json!({}));
    }

    #[test]
    fn an_id_from_another_group_is_refused() {
        let mut r = Results::new(vec![Group::PgSeq]);
        assert!(r.add(Group::PgSeq, Contender::Sqlx, &report(&[("load_1k", 1.0)])).is_err());
    }

    #[test]
    fn the_table_marks_missing_figures_and_computes_ratios() {
        let mut r = Results::new(vec![Group::MemSpread, Group::PgSeq]);
        r.add(Group::MemSpread, Contender::Ours, &report(&[("mem_spread", 300.0)])).unwrap();
        r.add(Group::MemSpread, Contender::CqrsEs, &report(&[("mem_spread", 100.0)])).unwrap();
        r.add(Group::PgSeq, Contender::Sqlx, &report(&[("pg_seq", 1_000.0)])).unwrap();
        let table = r.table(&Workload::new(true));
        let line = |id: &str| table.lines().find(|l| l.starts_with(&format!("{id} "))).unwrap().to_owned();
        assert!(line("mem_spread").contains("3.00x"), "{table}");
        assert!(line("mem_spread").ends_with('-'), "{table}");
        assert!(line("pg_seq").contains("n/a"), "{table}");
        assert!(line("pg_seq").contains("1,000 (1,000-1,000)"), "{table}");
    }
}
