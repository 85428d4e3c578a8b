//! Finds the README's example blocks; shared by build.rs and the tests.

/// The heading the example sits under.
pub const HEADING: &str = "## Thirty lines";
/// The heading of the read-model example (used by build.rs).
#[allow(dead_code)]
pub const READ_MODELS: &str = "## Read models and specifications";

/// The body of the first fenced code block tagged `lang` (```` ```rust ````, ```` ```toml ````)
/// after the line `heading`, or why there is none.
pub fn block_after(markdown: &str, heading: &str, lang: &str) -> Result<String, String> {
    let mut lines = markdown.lines().skip_while(|l| l.trim_end() != heading);
    if lines.next().is_none() {
        return Err(format!("README.md has no `{heading}` heading"));
    }
    let fence = format!("```{lang}");
    let mut lines = lines.skip_while(|l| l.trim_end() != fence);
    if lines.next().is_none() {
        return Err(format!("README.md has no {fence} block after its `{heading}` heading"));
    }
    let mut body = String::new();
    for line in lines {
        if line.trim_end() == "```" {
            return Ok(body);
        }
        body.push_str(line);
        body.push('\n');
    }
    Err(format!("the {fence} block after `{heading}` in README.md is not closed"))
}
