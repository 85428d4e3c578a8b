//! Field paths: `status`, `address.city`, `items[*].sku`.
//!
//! A path is names joined by `.`; `[*]` after a name says the value there is a list and
//! the rest of the path applies to each element. A path crosses a list only where it says
//! so, on every backend: a list where the path expects an object is a missing value. So a
//! path compiles to SQL that can use an index, and the in-memory evaluator agrees with it.
//!
//! A name is letters, digits, `_` and `-`, so a path can be written into SQL text (an
//! expression index must name it literally) without quoting anything.

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The member of an object.
    Key(String),
    /// Each element of a list.
    Each,
}

/// A parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The steps, first one first.
    pub steps: Vec<Step>,
}

impl Path {
    /// Reads a path, or says what is wrong with it.
    pub fn parse(attr: &str) -> Result<Path, String> {
        let mut steps = Vec::new();
        if attr.is_empty() {
            return Err(PATH_HELP.to_owned());
        }
        for segment in attr.split('.') {
            let (name, mut rest) = match segment.find('[') {
                Some(i) => segment.split_at(i),
                None => (segment, ""),
            };
            if !is_name(name) {
                return Err(format!("`{}` is not a field name: {PATH_HELP}", name.escape_default()));
            }
            steps.push(Step::Key(name.to_owned()));
            while !rest.is_empty() {
                rest =
                    rest.strip_prefix("[*]").ok_or_else(|| format!("`{}`: {PATH_HELP}", segment.escape_default()))?;
                steps.push(Step::Each);
            }
        }
        Ok(Path { steps })
    }

    /// Whether the path crosses a list.
    pub fn crosses_list(&self) -> bool {
        self.steps.contains(&Step::Each)
    }

    /// The names of a path that does not cross a list.
    pub fn keys(&self) -> Option<Vec<&str>> {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Each => None,
            })
            .collect()
    }
}

const PATH_HELP: &str =
    "a field path is names of letters, digits, `_` and `-` joined by `.`, with `[*]` after a list (`items[*].sku`)";

/// Whether `name` is a field name.
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// One step of a `json_path_exists` path (`$.a.b[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonStep {
    /// The member of an object.
    Key(String),
    /// The element of a list at this index.
    Index(u32),
}

/// Reads a `json_path_exists` path: `$`, then `.name` and `[n]` steps (the leading `$`
/// and `.` are optional).
pub fn json_path(path: &str) -> Result<Vec<JsonStep>, String> {
    let help = || format!("`{}` is not a path like `$.a.b[0]`", path.escape_default());
    let trimmed = path.trim();
    let body = trimmed.strip_prefix('$').unwrap_or(trimmed);
    let body = body.strip_prefix('.').unwrap_or(body);
    let mut steps = Vec::new();
    if body.is_empty() {
        return Ok(steps);
    }
    for segment in body.split('.') {
        let (name, indexes) = match segment.find('[') {
            Some(i) => segment.split_at(i),
            None => (segment, ""),
        };
        if !name.is_empty() {
            if !is_name(name) {
                return Err(help());
            }
            steps.push(JsonStep::Key(name.to_owned()));
        } else if indexes.is_empty() {
            return Err(help());
        }
        for index in indexes.split('[').skip(1) {
            let n = index.strip_suffix(']').and_then(|n| n.trim().parse().ok()).ok_or_else(help)?;
            steps.push(JsonStep::Index(n));
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_names_and_list_steps() {
        let p = Path::parse("items[*].sku").unwrap();
        assert_eq!(p.steps, [Step::Key("items".into()), Step::Each, Step::Key("sku".into())]);
        assert!(p.crosses_list());
        assert_eq!(Path::parse("a.b").unwrap().keys(), Some(vec!["a", "b"]));
        assert_eq!(Path::parse("m[*][*]").unwrap().steps.len(), 3);
        for bad in ["", "a..b", "a'b", "a[0]", "a[*", "a.$", "a b", "[*]"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_paths_read_keys_and_indexes() {
        assert_eq!(
            json_path("$.n.m[1]").unwrap(),
            [JsonStep::Key("n".into()), JsonStep::Key("m".into()), JsonStep::Index(1)]
        );
        assert_eq!(json_path("$").unwrap(), []);
        assert_eq!(json_path("a").unwrap(), [JsonStep::Key("a".into())]);
        for bad in ["$.a[x]", "$..a", "$.a'", "$.a[-1]"] {
            assert!(json_path(bad).is_err(), "{bad}");
        }
    }
}
