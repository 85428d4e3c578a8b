//! Tables for people, JSON for scripts.

use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;

/// Where a command's answer goes: standard output, as a table or as JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub(crate) json: bool,
}

impl Out {
    /// A listing: a table with a header, or a JSON array of the views.
    pub(crate) fn list<T: Serialize>(self, items: &[T], header: &[&str], row: impl Fn(&T) -> Vec<String>) {
        if self.json {
            self.value(&items);
            return;
        }
        if items.is_empty() {
            println!("(none)");
            return;
        }
        let rows: Vec<Vec<String>> = items.iter().map(row).collect();
        print_table(header, &rows);
    }

    /// One thing: JSON, or `name: value` lines.
    pub(crate) fn record<T: Serialize>(self, item: &T, lines: &[(&str, String)]) {
        if self.json {
            self.value(item);
            return;
        }
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in lines {
            println!("{k:>width$}  {v}");
        }
    }

    /// A JSON document on standard output.
    #[allow(clippy::unused_self)] // every answer goes through the one `Out`
    pub(crate) fn value<T: Serialize + ?Sized>(self, value: &T) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// One JSON document on one line (a followed tail).
    #[allow(clippy::unused_self)] // every answer goes through the one `Out`
    pub(crate) fn line<T: Serialize>(self, value: &T) {
        let text = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// What an action did: a sentence, or `{"done": .., ..}`.
    pub(crate) fn done(self, sentence: &str, json: &serde_json::Value) {
        if self.json {
            self.value(json);
        } else {
            println!("{sentence}");
        }
    }
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i + 1 == widths.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        text.trim_end().to_owned()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(&mut header.iter().copied()));
    for row in rows {
        let _ = writeln!(out, "{}", line(&mut row.iter().map(String::as_str)));
    }
}

/// A cell for an optional value.
pub(crate) fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A payload or error, on one line and cut to `max` characters.
pub(crate) fn short(text: &str, max: usize) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A time to the second, in UTC.
pub(crate) fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}
