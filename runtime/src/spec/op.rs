//! The leaf operators of a specification, by their wire names.

use std::fmt;

/// A leaf operator. The wire name (`"="`, `"not_in"`, `"json_contains"`, ...) is what the
/// JSON form carries; it is read case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal (a missing value is unknown, not "different").
    Ne,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `in`: one of a list.
    In,
    /// `not_in`: none of a list.
    NotIn,
    /// `all`: a list field holds every value of the list.
    All,
    /// `between`: `[low, high]`, both included.
    Between,
    /// `not_between`.
    NotBetween,
    /// `like`: SQL pattern (`%` any run, `_` one character, `\` escapes), case-sensitive.
    Like,
    /// `not_like`.
    NotLike,
    /// `ilike`: `like` ignoring case.
    Ilike,
    /// `contains`: the text holds the value (no wildcards).
    Contains,
    /// `icontains`: `contains` ignoring case.
    Icontains,
    /// `startswith`.
    StartsWith,
    /// `istartswith`.
    IstartsWith,
    /// `endswith`.
    EndsWith,
    /// `iendswith`.
    IendsWith,
    /// `regex`: a regular expression found anywhere in the text.
    Regex,
    /// `iregex`: `regex` ignoring case.
    Iregex,
    /// `is_null`: the value is missing or null.
    IsNull,
    /// `is_not_null`.
    IsNotNull,
    /// `is_empty`: missing, null, `""`, `[]` or `{}`.
    IsEmpty,
    /// `is_not_empty`.
    IsNotEmpty,
    /// `json_contains`: JSON containment, like PostgreSQL's `@>`.
    JsonContains,
    /// `json_contained_by`: the reverse, `<@`.
    JsonContainedBy,
    /// `json_has_key`: an object with this key (or an array holding this string).
    JsonHasKey,
    /// `json_has_any`: any of the keys.
    JsonHasAny,
    /// `json_has_all`: every key.
    JsonHasAll,
    /// `json_path_exists`: a path (`$.a.b[0]`) leads somewhere.
    JsonPathExists,
    /// `intersects` (geometry).
    Intersects,
    /// `within` (geometry).
    Within,
    /// `contains_geom` (geometry).
    ContainsGeom,
    /// `touches` (geometry).
    Touches,
    /// `crosses` (geometry).
    Crosses,
    /// `overlaps` (geometry).
    Overlaps,
    /// `disjoint` (geometry).
    Disjoint,
    /// `geom_equals` (geometry).
    GeomEquals,
    /// `distance_lt` (geometry).
    DistanceLt,
    /// `dwithin` (geometry).
    Dwithin,
    /// `bbox_intersects` (geometry).
    BboxIntersects,
    /// `fts`: full-text search; every word of the query is in the text.
    Fts,
    /// `fts_phrase`: full-text search of a phrase.
    FtsPhrase,
}

impl Op {
    /// Every leaf operator, in the reference's order.
    pub const ALL: [Op; 45] = [
        Op::Eq,
        Op::Ne,
        Op::Gt,
        Op::Lt,
        Op::Ge,
        Op::Le,
        Op::In,
        Op::NotIn,
        Op::All,
        Op::Between,
        Op::NotBetween,
        Op::Like,
        Op::NotLike,
        Op::Ilike,
        Op::Contains,
        Op::Icontains,
        Op::StartsWith,
        Op::IstartsWith,
        Op::EndsWith,
        Op::IendsWith,
        Op::Regex,
        Op::Iregex,
        Op::IsNull,
        Op::IsNotNull,
        Op::IsEmpty,
        Op::IsNotEmpty,
        Op::JsonContains,
        Op::JsonContainedBy,
        Op::JsonHasKey,
        Op::JsonHasAny,
        Op::JsonHasAll,
        Op::JsonPathExists,
        Op::Intersects,
        Op::Within,
        Op::ContainsGeom,
        Op::Touches,
        Op::Crosses,
        Op::Overlaps,
        Op::Disjoint,
        Op::GeomEquals,
        Op::DistanceLt,
        Op::Dwithin,
        Op::BboxIntersects,
        Op::Fts,
        Op::FtsPhrase,
    ];

    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::All => "all",
            Op::Between => "between",
            Op::NotBetween => "not_between",
            Op::Like => "like",
            Op::NotLike => "not_like",
            Op::Ilike => "ilike",
            Op::Contains => "contains",
            Op::Icontains => "icontains",
            Op::StartsWith => "startswith",
            Op::IstartsWith => "istartswith",
            Op::EndsWith => "endswith",
            Op::IendsWith => "iendswith",
            Op::Regex => "regex",
            Op::Iregex => "iregex",
            Op::IsNull => "is_null",
            Op::IsNotNull => "is_not_null",
            Op::IsEmpty => "is_empty",
            Op::IsNotEmpty => "is_not_empty",
            Op::JsonContains => "json_contains",
            Op::JsonContainedBy => "json_contained_by",
            Op::JsonHasKey => "json_has_key",
            Op::JsonHasAny => "json_has_any",
            Op::JsonHasAll => "json_has_all",
            Op::JsonPathExists => "json_path_exists",
            Op::Intersects => "intersects",
            Op::Within => "within",
            Op::ContainsGeom => "contains_geom",
            Op::Touches => "touches",
            Op::Crosses => "crosses",
            Op::Overlaps => "overlaps",
            Op::Disjoint => "disjoint",
            Op::GeomEquals => "geom_equals",
            Op::DistanceLt => "distance_lt",
            Op::Dwithin => "dwithin",
            Op::BboxIntersects => "bbox_intersects",
            Op::Fts => "fts",
            Op::FtsPhrase => "fts_phrase",
        }
    }

    /// The operator of a wire name, read case-insensitively.
    pub fn from_name(name: &str) -> Option<Op> {
        let lower = name.trim().to_ascii_lowercase();
        Op::ALL.into_iter().find(|op| op.name() == lower)
    }

    /// Whether it is one of the geometry operators (the `geo` feature).
    pub fn is_geometry(self) -> bool {
        matches!(
            self,
            Op::Intersects
                | Op::Within
                | Op::ContainsGeom
                | Op::Touches
                | Op::Crosses
                | Op::Overlaps
                | Op::Disjoint
                | Op::GeomEquals
                | Op::DistanceLt
                | Op::Dwithin
                | Op::BboxIntersects
        )
    }

    /// Whether the operator reads no value (`is_null`, `is_not_null`, `is_empty`,
    /// `is_not_empty`).
    pub fn takes_no_value(self) -> bool {
        matches!(self, Op::IsNull | Op::IsNotNull | Op::IsEmpty | Op::IsNotEmpty)
    }

    /// Up to three wire names close to `name`, closest first (for "did you mean").
    pub fn suggestions(name: &str) -> Vec<&'static str> {
        closest(&name.trim().to_ascii_lowercase(), Op::ALL.iter().map(|op| op.name()))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Up to three of `known` close to `word` by edit distance, closest first.
pub(crate) fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(usize, &str)> =
        known.into_iter().map(|k| (edit_distance(word, k), k)).filter(|(d, k)| *d <= 2.max(k.len() / 3)).collect();
    scored.sort_by_key(|(d, _)| *d);
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_five_operators_each_named_once_and_read_back_in_any_case() {
        let mut names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
            assert_eq!(Op::from_name(&op.name().to_ascii_uppercase()), Some(op));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 45);
        assert_eq!(Op::ALL.iter().filter(|op| op.is_geometry()).count(), 11);
    }

    #[test]
    fn a_misspelled_operator_gets_suggestions() {
        assert_eq!(Op::from_name("contians"), None);
        assert_eq!(Op::suggestions("contians").first(), Some(&"contains"));
        assert!(Op::suggestions("is_nul").contains(&"is_null"));
    }
}
