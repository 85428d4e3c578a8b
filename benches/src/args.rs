//! The command line: `[--quick] [--json FILE] [--only NAME[,NAME..]]`, and the hidden
//! flags of a child process that runs one cell.

use std::path::PathBuf;

use crate::db::Target;
use crate::scenarios::{Contender, Group};

pub(crate) const USAGE: &str = "\
usage: cqrs-ddd-bench [--quick] [--json FILE] [--only NAME[,NAME..]]
       cqrs-ddd-bench --instructions [--baseline FILE] [--write-baseline FILE]

  --quick       the same workloads, fewer repetitions and timed calls (a few minutes)
  --json FILE   also write the results as JSON to FILE
  --only NAME   run only the scenarios whose id is or starts with NAME (repeatable,
                or comma-separated), e.g. --only mem_spread --only load
  --instructions
                count the instructions per operation of the in-memory rows under
                valgrind's callgrind (no timing: the counts do not depend on the load
                of the machine)
  --baseline FILE
                with --instructions: compare with FILE and exit 1 when a row costs
                more than 10% (and 50) more instructions than there
  --write-baseline FILE
                with --instructions: write the counts to FILE
  -h, --help    this text

PostgreSQL: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); MariaDB:
MYSQL_URL (default mysql://root@127.0.0.1:3306). A run creates its own database
cqrs_ddd_bench_<pid> on each server it needs, and a directory of that name in the temp
directory for SQLite, and removes them at the end.";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Help,
    Run(RunOptions),
    Cell(CellSpec),
    Instructions(InstructionOptions),
    /// A child of `--instructions`: row `row`'s operation, `ops` times.
    Count {
        row: String,
        ops: usize,
    },
}

/// `--instructions` and its files.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct InstructionOptions {
    pub(crate) baseline: Option<PathBuf>,
    pub(crate) write_baseline: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunOptions {
    pub(crate) quick: bool,
    pub(crate) json: Option<PathBuf>,
    pub(crate) only: Vec<String>,
}

/// One cell, run by a child process: a group, a contender, a repetition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CellSpec {
    pub(crate) group: Group,
    pub(crate) contender: Contender,
    pub(crate) rep: usize,
    pub(crate) quick: bool,
    pub(crate) target: Option<Target>,
}

impl CellSpec {
    /// The arguments that make a child process run this cell.
    pub(crate) fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--cell".to_owned(),
            self.group.name().to_owned(),
            "--contender".to_owned(),
            self.contender.key().to_owned(),
            "--rep".to_owned(),
            self.rep.to_string(),
        ];
        if self.quick {
            args.push("--quick".to_owned());
        }
        if let Some(t) = &self.target {
            args.extend(["--db".to_owned(), t.url.clone(), "--db-name".to_owned(), t.name.clone()]);
        }
        args
    }
}

pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mut run = RunOptions::default();
    let (mut cell, mut contender, mut rep, mut db, mut db_name) = (None, None, 0, None, None);
    let (mut instructions, mut counts, mut count, mut ops) = (false, InstructionOptions::default(), None, None);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("`{flag}` needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--instructions" => instructions = true,
            "--baseline" => counts.baseline = Some(PathBuf::from(value("--baseline")?)),
            "--write-baseline" => counts.write_baseline = Some(PathBuf::from(value("--write-baseline")?)),
            "--count" => count = Some(value("--count")?),
            "--ops" => {
                let v = value("--ops")?;
                ops = Some(v.parse().map_err(|_| format!("`--ops {v}` is not a number"))?);
            }
            "--quick" => run.quick = true,
            "--json" => run.json = Some(PathBuf::from(value("--json")?)),
            "--only" => {
                let names = value("--only")?;
                run.only.extend(names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned));
            }
            "--cell" => {
                let v = value("--cell")?;
                cell = Some(Group::parse(&v).ok_or_else(|| format!("unknown cell group `{v}`"))?);
            }
            "--contender" => {
                let v = value("--contender")?;
                contender = Some(Contender::parse(&v).ok_or_else(|| format!("unknown contender `{v}`"))?);
            }
            "--rep" => {
                let v = value("--rep")?;
                rep = v.parse().map_err(|_| format!("`--rep {v}` is not a number"))?;
            }
            "--db" => db = Some(value("--db")?),
            "--db-name" => db_name = Some(value("--db-name")?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if let Some(row) = count {
        return Ok(Command::Count { row, ops: ops.ok_or("`--count` needs `--ops`")? });
    }
    if counts != InstructionOptions::default() && !instructions {
        return Err("`--baseline` and `--write-baseline` go with `--instructions`".to_owned());
    }
    if instructions {
        if run != RunOptions::default() {
            return Err("`--instructions` counts every in-memory row: no `--quick`, `--json` or `--only`".to_owned());
        }
        return Ok(Command::Instructions(counts));
    }
    let Some(group) = cell else { return Ok(Command::Run(run)) };
    let contender = contender.ok_or("`--cell` needs `--contender`")?;
    let target = match (db, db_name) {
        (Some(url), Some(name)) => Some(Target { url, name }),
        (None, None) => None,
        _ => return Err("`--db` and `--db-name` go together".to_owned()),
    };
    Ok(Command::Cell(CellSpec { group, contender, rep, quick: run.quick, target }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command, String> {
        parse(s.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn run_options_parse() {
        assert_eq!(parse_str(""), Ok(Command::Run(RunOptions::default())));
        assert_eq!(
            parse_str("--quick --json out.json --only mem_spread,load --only pg_seq"),
            Ok(Command::Run(RunOptions {
                quick: true,
                json: Some(PathBuf::from("out.json")),
                only: vec!["mem_spread".into(), "load".into(), "pg_seq".into()],
            }))
        );
        assert_eq!(parse_str("--help"), Ok(Command::Help));
    }

    #[test]
    fn instruction_options_parse() {
        assert_eq!(parse_str("--instructions"), Ok(Command::Instructions(InstructionOptions::default())));
        assert_eq!(
            parse_str("--instructions --baseline b.txt --write-baseline w.txt"),
            Ok(Command::Instructions(InstructionOptions {
                baseline: Some(PathBuf::from("b.txt")),
                write_baseline: Some(PathBuf::from("w.txt")),
            }))
        );
        assert_eq!(parse_str("--count mem_spread --ops 7"), Ok(Command::Count { row: "mem_spread".into(), ops: 7 }));
        assert!(parse_str("--baseline b.txt").unwrap_err().contains("--instructions"));
        assert!(parse_str("--instructions --quick").unwrap_err().contains("--quick"));
        assert!(parse_str("--count mem_spread").unwrap_err().contains("--ops"));
        assert!(parse_str("--count mem_spread --ops x").unwrap_err().contains("--ops x"));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(parse_str("--json").unwrap_err().contains("--json"));
        assert!(parse_str("--fast").unwrap_err().contains("--fast"));
        assert!(parse_str("--cell mem_spread").unwrap_err().contains("--contender"));
        assert!(parse_str("--cell nope --contender sqlx").unwrap_err().contains("nope"));
        assert!(parse_str("--cell load --contender sqlx --db x").unwrap_err().contains("--db-name"));
    }

    #[test]
    fn a_cell_round_trips_through_its_arguments() {
        let spec = CellSpec {
            group: Group::PgConc16,
            contender: Contender::CqrsEs,
            rep: 2,
            quick: true,
            target: Some(Target { url: "postgres://u@h/p".into(), name: "cqrs_ddd_bench_7".into() }),
        };
        assert_eq!(parse(spec.to_args()), Ok(Command::Cell(spec.clone())));
        let in_memory = CellSpec { group: Group::MemLong, target: None, quick: false, ..spec };
        assert_eq!(parse(in_memory.to_args()), Ok(Command::Cell(in_memory)));
    }
}
