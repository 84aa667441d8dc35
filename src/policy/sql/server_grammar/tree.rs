//! The walk over PostgreSQL's parse tree that decides whether it holds only a read.
//!
//! Invariants:
//! - Every message of the tree is seen (see [`super::serializer`]); a kind in neither
//!   [`READ_NODES`] nor [`RUNS_MODIFYING`] is a problem.
//! - A modifying kind, or a function catalogued as more than read, is a problem unless it
//!   sits under an `EXPLAIN` that provably does not analyse. `analyze` counts as off only
//!   for the option values PostgreSQL's `defGetBoolean` reads as false (`0`, `false`,
//!   `off`, any case); a missing or any other value is on.
//! - A function that is neither catalogued nor trusted is a problem even under a plan-only
//!   `EXPLAIN` (the planner may run it), as the sqlparser walk has it.
//! - Only the first problem is kept; the walk still runs to the end.

use pg_query::protobuf::{TransactionStmtKind, VariableSetKind};

use super::nodes::{GRAMMAR_FUNCTIONS, READ_NODES, RUNS_MODIFYING, SAMPLE_METHODS};
use super::serializer::TreeEvents;
use crate::policy::Class;
use crate::policy::sql::analysis::SqlOptions;
use crate::policy::sql::catalog::harmless_setting;
use crate::policy::sql::functions::{FunctionVerdict, function_verdict};
use crate::policy::sql::names::{NameSet, relation_from_parts};
use crate::policy::sql::target::CalledNames;

/// Where top-level statements sit: `ParseResult.stmts[].stmt.node`.
const STATEMENT_PATH: &[&str] = &["ParseResult", "stmts", "RawStmt", "stmt", "Node", "node"];

/// An `EXPLAIN` being walked: whether it analyses, and what would run if it does.
struct Explain {
    analyze: bool,
    deferred: Vec<String>,
}

/// A node whose name parts (strings of a `List` field) are being collected.
struct Named {
    node: &'static str,
    parts: Vec<String>,
}

/// A `DefElem` being walked.
struct OptionBeingRead {
    of_explain: bool,
    name: String,
    has_arg: bool,
    arg_false: bool,
}

/// A `SET` / `RESET` being walked.
struct Setting {
    kind: i64,
    name: String,
}

pub(super) struct TreeJudge<'o> {
    opts: &'o SqlOptions<'o>,
    /// Struct names and field keys from the root to here.
    path: Vec<&'static str>,
    explains: Vec<Explain>,
    named: Vec<Named>,
    options: Vec<OptionBeingRead>,
    settings: Vec<Setting>,
    pub statements: Vec<&'static str>,
    pub problem: Option<String>,
    pub tables: NameSet,
    pub functions: NameSet,
    /// What the tree resolves by name, for the check against the target's own objects.
    pub called: CalledNames,
    /// Strings seen so far in the `ColumnRef` being walked (its first names a relation or
    /// column; later ones may name a function: `t.f` is `f(t)`).
    column_parts: usize,
}

impl<'o> TreeJudge<'o> {
    pub fn new(opts: &'o SqlOptions<'o>) -> Self {
        TreeJudge {
            opts,
            path: Vec::with_capacity(64),
            explains: Vec::new(),
            named: Vec::new(),
            options: Vec::new(),
            settings: Vec::new(),
            statements: Vec::new(),
            problem: None,
            tables: NameSet::new(),
            functions: NameSet::new(),
            called: CalledNames::default(),
            column_parts: 0,
        }
    }

    fn problem(&mut self, why: impl FnOnce() -> String) {
        if self.problem.is_none() {
            self.problem = Some(why());
        }
    }

    /// Something that modifies when the statement runs: allowed only under a plan-only
    /// `EXPLAIN`, decided when that `EXPLAIN` ends.
    fn runs(&mut self, what: String) {
        match self.explains.last_mut() {
            Some(e) => e.deferred.push(what),
            None => self.problem(|| what),
        }
    }

    fn ends_with(&self, suffix: &[&str]) -> bool {
        self.path.ends_with(suffix)
    }

    /// Whether the path ends at a string of `node.field` (a name list: `[String, …]`).
    fn in_name_list(&self, node: &str, field: &str) -> bool {
        self.ends_with(&[node, field, "Node", "node", "String", "sval"])
    }

    fn arg_scalar(&self, kind: &str, field: &str) -> bool {
        self.ends_with(&["DefElem", "arg", "Node", "node", kind, field])
    }

    fn function(&mut self, parts: Vec<String>) {
        if let [schema, bare] = parts.as_slice()
            && schema == "pg_catalog"
            && GRAMMAR_FUNCTIONS.contains(&bare.as_str())
        {
            self.functions.insert(bare.clone());
            return;
        }
        if let Some(bare) = resolved_by_name(&parts) {
            self.called.functions.insert(bare.to_string());
        }
        let FunctionVerdict { shown, class } = match function_verdict(&parts, self.opts) {
            Ok(v) => v,
            Err(what) => return self.problem(|| what.to_string()),
        };
        match class {
            None => {}
            Some(Class::Unknown) => self
                .problem(|| format!("function {shown} is not a known pure built-in nor trusted")),
            Some(c) => self.runs(format!("function {shown} ({c})")),
        }
        self.functions.insert(shown);
    }

    fn named_end(&mut self, node: &'static str) {
        let Some(Named { parts, .. }) = self.named.pop() else {
            return;
        };
        match node {
            "FuncCall" => self.function(parts),
            "RangeVar" => match relation_from_parts(&parts) {
                Some(t) => {
                    self.tables.insert(t);
                }
                None => self.problem(|| "a relation without a name".into()),
            },
            "RangeTableSample" => {
                let method = parts.last().map(String::as_str).unwrap_or_default();
                let core = match parts.as_slice() {
                    [_] => true,
                    [schema, _] => schema == "pg_catalog",
                    _ => false,
                };
                if !(core && SAMPLE_METHODS.contains(&method)) {
                    self.problem(|| format!("TABLESAMPLE {} is not a core method", parts.join(".")))
                }
            }
            "TypeName" => {
                if let Some(bare) = resolved_by_name(&parts) {
                    self.called.types.insert(bare.to_string());
                }
            }
            // `IN (SELECT …)`, `EXISTS`: no name, `=` (the grammar leaves it to analysis).
            "SubLink" if parts.is_empty() => {
                self.called.operators.insert("=".into());
            }
            // `ORDER BY x` without `USING`: the type's default sort operators, not a name.
            "SortBy" if parts.is_empty() => {}
            // Operators: only unqualified or pg_catalog ones.
            _ => {
                if parts.len() > 1 && parts.first().is_some_and(|s| s != "pg_catalog") {
                    self.problem(|| {
                        format!("OPERATOR({}) is not a pg_catalog operator", parts.join("."))
                    })
                }
                if let [op] = parts.as_slice() {
                    self.operator(op);
                }
            }
        }
    }

    /// An operator named unqualified; the `BETWEEN` forms name the comparisons they become.
    fn operator(&mut self, op: &str) {
        if op.starts_with(|c: char| c.is_ascii_alphabetic()) {
            for implied in [">=", "<=", "<", ">"] {
                self.called.operators.insert(implied.into());
            }
        } else {
            self.called.operators.insert(op.to_string());
        }
    }

    fn explain_end(&mut self) {
        let Some(e) = self.explains.pop() else {
            return;
        };
        if e.analyze {
            for what in e.deferred {
                self.runs(format!("{what} inside EXPLAIN ANALYZE"));
            }
        }
    }

    fn option_end(&mut self) {
        let Some(o) = self.options.pop() else {
            return;
        };
        let off = o.has_arg && o.arg_false;
        if o.of_explain
            && o.name == "analyze"
            && !off
            && let Some(e) = self.explains.last_mut()
        {
            e.analyze = true;
        }
    }

    fn setting_end(&mut self) {
        let Some(Setting { kind, name }) = self.settings.pop() else {
            return;
        };
        let is = |k: VariableSetKind| kind == k as i64;
        let fine = if is(VariableSetKind::VarResetAll) {
            true
        } else if is(VariableSetKind::VarSetMulti) {
            matches!(name.as_str(), "TRANSACTION" | "SESSION CHARACTERISTICS")
        } else {
            (is(VariableSetKind::VarSetValue)
                || is(VariableSetKind::VarSetDefault)
                || is(VariableSetKind::VarSetCurrent)
                || is(VariableSetKind::VarReset))
                && harmless_setting(&name)
        };
        if !fine {
            self.problem(|| {
                format!("VariableSetStmt of {name:?} is not a reviewed session setting")
            });
        }
    }
}

impl TreeEvents for TreeJudge<'_> {
    fn enter_struct(&mut self, name: &'static str) {
        if self.path == STATEMENT_PATH {
            self.statements.push(name);
        }
        if self.ends_with(&["DefElem", "arg"])
            && let Some(o) = self.options.last_mut()
        {
            o.has_arg = true;
        }
        let of_explain = self.ends_with(&["ExplainStmt", "options", "Node", "node"]);
        if RUNS_MODIFYING.contains(&name) {
            self.runs(name.to_string());
        } else if !READ_NODES.contains(&name) {
            self.problem(|| format!("{name} is not a node a read can hold"));
        }
        match name {
            "ExplainStmt" => self.explains.push(Explain {
                analyze: false,
                deferred: Vec::new(),
            }),
            "FuncCall" | "RangeVar" | "RangeTableSample" | "AExpr" | "SubLink" | "SortBy"
            | "TypeName" => self.named.push(Named {
                node: name,
                parts: Vec::new(),
            }),
            "TypeCast" => self.called.casts = true,
            "ColumnRef" => self.column_parts = 0,
            // `CASE x WHEN y`, `JOIN … USING` / `NATURAL JOIN`: `=` by name.
            "CaseExpr" | "JoinExpr" => {
                self.called.operators.insert("=".into());
            }
            "DefElem" => self.options.push(OptionBeingRead {
                of_explain,
                name: String::new(),
                has_arg: false,
                arg_false: false,
            }),
            "VariableSetStmt" => self.settings.push(Setting {
                kind: 0,
                name: String::new(),
            }),
            _ => {}
        }
        self.path.push(name);
    }

    fn leave_struct(&mut self, name: &'static str) {
        self.path.pop();
        match name {
            "ExplainStmt" => self.explain_end(),
            "FuncCall" | "RangeVar" | "RangeTableSample" | "AExpr" | "SubLink" | "SortBy"
            | "TypeName" => self.named_end(name),
            "DefElem" => self.option_end(),
            "VariableSetStmt" => self.setting_end(),
            _ => {}
        }
    }

    fn enter_field(&mut self, key: &'static str) {
        self.path.push(key);
    }

    fn leave_field(&mut self) {
        self.path.pop();
    }

    fn string(&mut self, value: &str) {
        let name_of = [
            ("FuncCall", "funcname"),
            ("AExpr", "name"),
            ("SubLink", "oper_name"),
            ("RangeTableSample", "method"),
            ("SortBy", "use_op"),
            ("TypeName", "names"),
        ]
        .into_iter()
        .find(|(node, field)| self.in_name_list(node, field))
        .map(|(node, _)| node)
        .or_else(|| {
            let relation_part = ["catalogname", "schemaname", "relname"]
                .iter()
                .any(|f| self.ends_with(&["RangeVar", f]));
            (relation_part && !value.is_empty()).then_some("RangeVar")
        });
        if let Some(owner) = name_of {
            match self.named.last_mut() {
                Some(n) if n.node == owner => n.parts.push(value.to_string()),
                _ => self.problem(|| format!("a name of {owner} out of place")),
            }
        } else if self.in_name_list("ColumnRef", "fields") {
            if self.column_parts > 0 {
                self.called.attributes.insert(value.to_string());
            }
            self.column_parts += 1;
        } else if self.in_name_list("AIndirection", "indirection") {
            self.called.attributes.insert(value.to_string());
        } else if self.ends_with(&["DefElem", "defname"]) {
            if let Some(o) = self.options.last_mut() {
                o.name = value.to_string();
            }
        } else if self.arg_scalar("String", "sval") {
            if let Some(o) = self.options.last_mut() {
                o.arg_false =
                    value.eq_ignore_ascii_case("false") || value.eq_ignore_ascii_case("off");
            }
        } else if self.ends_with(&["VariableSetStmt", "name"]) {
            if let Some(s) = self.settings.last_mut() {
                s.name = value.to_string();
            }
        } else if self.ends_with(&["CopyStmt", "filename"]) && !value.is_empty() {
            self.problem(|| "COPY to or from a server file".into());
        }
    }

    fn boolean(&mut self, value: bool) {
        if self.arg_scalar("Boolean", "boolval") {
            if let Some(o) = self.options.last_mut() {
                o.arg_false = !value;
            }
        } else if value && self.ends_with(&["CopyStmt", "is_from"]) {
            self.problem(|| "COPY … FROM writes".into());
        } else if value && self.ends_with(&["CopyStmt", "is_program"]) {
            self.problem(|| "COPY … PROGRAM runs a command".into());
        }
    }

    fn integer(&mut self, value: i64) {
        if self.arg_scalar("Integer", "ival") {
            if let Some(o) = self.options.last_mut() {
                o.arg_false = value == 0;
            }
        } else if self.ends_with(&["VariableSetStmt", "kind"]) {
            if let Some(s) = self.settings.last_mut() {
                s.kind = value;
            }
        } else if self.ends_with(&["TransactionStmt", "kind"]) {
            let plain = [
                TransactionStmtKind::TransStmtBegin,
                TransactionStmtKind::TransStmtStart,
                TransactionStmtKind::TransStmtCommit,
                TransactionStmtKind::TransStmtRollback,
                TransactionStmtKind::TransStmtSavepoint,
                TransactionStmtKind::TransStmtRelease,
                TransactionStmtKind::TransStmtRollbackTo,
            ];
            if !plain.iter().any(|k| *k as i64 == value) {
                self.problem(|| "a two-phase-commit TransactionStmt".into());
            }
        }
    }
}

/// The bare name of a function or type that is looked up by name outside `pg_catalog`:
/// unqualified, or qualified with another schema. `None` for `pg_catalog.name`.
fn resolved_by_name(parts: &[String]) -> Option<&str> {
    match parts {
        [schema, _] if schema == "pg_catalog" => None,
        [.., bare] => Some(bare),
        [] => None,
    }
}
