// The SQL test corpus: every statement the SQL unit tests classify, with the class each
// must get, kept as text files (`corpus/*.sql`, `testdata/`) so that the unit tests and the
// read-only oracle against real PostgreSQL (`tests/pg_read_only_oracle.rs`, through
// `include!`) read one list. This file therefore uses nothing but `std`.
//
// `corpus/*.sql` format: a line `-- ==== <class>` (a note may follow the class), then the
// text up to the next line starting `-- ====` or `-- ####`; `-- ####` lines are comments.
// Texts keep their bytes exactly (no escapes), empty texts included.

/// The corpus files of tables of cases: (name, contents).
pub const CORPUS_FILES: &[(&str, &str)] = &[
    ("basic", include_str!("corpus/basic.sql")),
    ("evasion", include_str!("corpus/evasion.sql")),
    ("session", include_str!("corpus/session.sql")),
    ("server_grammar", include_str!("corpus/server_grammar.sql")),
];

const PSQL: &str = include_str!("testdata/psql15_queries.sql");
const PGBENCH: &str = include_str!("testdata/pgbench_queries.tsv");
const PSQL_SEPARATOR: &str = "\n-- ---- next query ----\n";

/// The cases of one corpus file: (class name, text), in file order.
pub fn corpus_cases(contents: &str) -> Vec<(&str, String)> {
    let mut lines: Vec<&str> = contents.split('\n').collect();
    if contents.ends_with('\n') {
        lines.pop();
    }
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut open = false;
    for line in lines {
        if let Some(header) = line.strip_prefix("-- ==== ") {
            let class = header.split_whitespace().next().unwrap_or_default();
            out.push((class, Vec::new()));
            open = true;
        } else if line.starts_with("-- ####") {
            open = false;
        } else if open && let Some((_, text)) = out.last_mut() {
            text.push(line);
        }
    }
    out.into_iter()
        .map(|(class, text)| (class, text.join("\n")))
        .collect()
}

/// The texts psql 15 and pgbench send (`testdata/`): (class name, text).
pub fn client_cases() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&str, String)> = PSQL
        .split(PSQL_SEPARATOR)
        .skip(1)
        .map(|q| ("read", q.trim_end().to_string()))
        .collect();
    for line in PGBENCH.lines().filter(|l| !l.is_empty()) {
        let (class, text) = line.split_once('\t').unwrap_or(("unknown", line));
        out.push((class, text.to_string()));
    }
    out
}

/// Every case of the corpus: (class name, text).
pub fn all_cases() -> Vec<(&'static str, String)> {
    let mut out: Vec<(&str, String)> = CORPUS_FILES
        .iter()
        .flat_map(|(_, contents)| corpus_cases(contents))
        .collect();
    out.extend(client_cases());
    out
}
