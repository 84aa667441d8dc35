//! The tree walk behind [`super::analyze_sql`]: one `Visitor` pass that classifies every
//! statement (nested ones included), every function call, operator and `FROM` item, and
//! collects relations.
//!
//! Invariants:
//! - The visitor never breaks: every node is seen.
//! - Inside `EXPLAIN` without `ANALYZE` (plan-only) nested statements do not run, so their
//!   own class is not counted; an unknown function still counts (the planner may evaluate
//!   an immutable one), known built-ins do not.
//! - Relation lists only ever over-include: a name is left out only when it is a CTE in
//!   scope, and the targets of INSERT/UPDATE/DELETE/MERGE are always listed.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement,
    TableFactor, Visitor,
};

use super::analysis::{SqlEffect, SqlOptions};
use super::functions::{FunctionVerdict, function_verdict};
use super::names::{NameSet, ident, parts, relation, stmt_name, truncate_identifier};
use super::statement::{explain_runs, statement_class, statement_tables};
use crate::policy::{Class, Worst};

/// CTE names one query puts in scope.
struct Scope {
    query: usize,
    recursive: bool,
    /// (name, address of the CTE's query)
    ctes: Vec<(String, usize)>,
    /// How many of `ctes` are visible right now.
    visible: usize,
}

pub(super) struct Walk<'o> {
    opts: &'o SqlOptions<'o>,
    /// `[0]` covers the whole text; each `PREPARE` pushes one for its own statement.
    acc: Vec<Worst>,
    plan_only: u32,
    scopes: Vec<Scope>,
    /// Addresses of `ObjectName`s that name table functions, not relations.
    fn_names: Vec<usize>,
    tables: NameSet,
    functions: NameSet,
    effects: Vec<SqlEffect>,
}

pub(super) struct WalkOut {
    pub worst: Worst,
    pub tables: NameSet,
    pub functions: NameSet,
    pub effects: Vec<SqlEffect>,
}

fn addr<T>(t: &T) -> usize {
    std::ptr::from_ref(t) as usize
}

impl<'o> Walk<'o> {
    pub fn new(opts: &'o SqlOptions<'o>) -> Walk<'o> {
        Walk {
            opts,
            acc: vec![Worst::new("every statement is read")],
            plan_only: 0,
            scopes: Vec::new(),
            fn_names: Vec::new(),
            tables: NameSet::new(),
            functions: NameSet::new(),
            effects: Vec::new(),
        }
    }

    pub fn finish(mut self) -> WalkOut {
        let mut worst = Worst::new("every statement is read");
        while let Some(w) = self.acc.pop() {
            worst.merge(w);
        }
        WalkOut {
            worst,
            tables: self.tables,
            functions: self.functions,
            effects: self.effects,
        }
    }

    fn raise(&mut self, class: Class, reason: impl FnOnce() -> String) {
        if let Some(w) = self.acc.last_mut() {
            w.raise(class, reason);
        }
    }

    fn unknown(&mut self, what: &str) {
        self.raise(Class::Unknown, || format!("{what} is not recognised"));
    }

    fn add_table(&mut self, name: &ObjectName) {
        match relation(name) {
            Some(t) => {
                self.tables.insert(t);
            }
            None => self.unknown("a computed relation name"),
        }
    }

    fn is_cte(&self, name: &ObjectName) -> bool {
        let [ObjectNamePart::Identifier(i)] = name.0.as_slice() else {
            return false;
        };
        let n = ident(i);
        self.scopes
            .iter()
            .any(|s| s.ctes.iter().take(s.visible).any(|(c, _)| *c == n))
    }

    fn function(&mut self, name: &ObjectName) {
        let Some(p) = parts(name) else {
            return self.unknown("a computed function name");
        };
        let FunctionVerdict { shown, class } = match function_verdict(&p, self.opts) {
            Ok(v) => v,
            Err(what) => return self.unknown(what),
        };
        if let Some(c) = class
            && (self.plan_only == 0 || c == Class::Unknown)
        {
            let why = match c {
                Class::Unknown => "is not a known pure built-in nor trusted",
                _ => "is",
            };
            self.raise(c, || match c {
                Class::Unknown => format!("function {shown} {why}"),
                _ => format!("function {shown} {why} {c}"),
            });
        }
        self.functions.insert(shown);
    }

    fn operator(&mut self, op: &BinaryOperator) {
        match op {
            BinaryOperator::PGCustomBinaryOperator(p) => {
                let builtin = p.len() == 2
                    && p.first()
                        .is_some_and(|s| s.eq_ignore_ascii_case("pg_catalog"));
                if !builtin {
                    self.raise(Class::Unknown, || {
                        format!("OPERATOR({}) is not a pg_catalog operator", p.join("."))
                    });
                }
            }
            BinaryOperator::Custom(s) => {
                let s = s.clone();
                self.raise(Class::Unknown, || {
                    format!("operator {s} is not a known built-in")
                });
            }
            _ => {}
        }
    }

    /// `TABLE t` inside a query body names a relation as plain identifiers.
    fn set_expr_tables(&mut self, body: &SetExpr) {
        let mut stack = vec![body];
        while let Some(e) = stack.pop() {
            match e {
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(left);
                    stack.push(right);
                }
                SetExpr::Table(t) => {
                    let name: Vec<_> = [&t.schema_name, &t.table_name]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect();
                    if name.is_empty() {
                        self.unknown("TABLE without a name");
                    } else {
                        self.add_table(&ObjectName::from(name));
                    }
                }
                _ => {}
            }
        }
    }
}

impl Visitor for Walk<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if self.plan_only == 0 {
            let (class, why) = statement_class(s);
            self.raise(class, || why.into_owned());
        }
        for t in statement_tables(s) {
            self.add_table(t);
        }
        match s {
            Statement::Explain {
                analyze, options, ..
            } if !explain_runs(*analyze, options.as_deref()) => self.plan_only += 1,
            Statement::Prepare { .. } => self.acc.push(Worst::new("PREPARE of a read")),
            Statement::Execute { name, .. } if self.plan_only == 0 => {
                match name.as_ref().and_then(parts).as_deref() {
                    Some([n]) => self.effects.push(SqlEffect::Execute {
                        name: truncate_identifier(n).to_string(),
                    }),
                    _ => self.unknown("EXECUTE of this form"),
                }
            }
            Statement::Deallocate { name, .. } => {
                let all = name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all");
                let name = (!all).then(|| stmt_name(name));
                self.effects.push(SqlEffect::Deallocate { name });
            }
            Statement::Discard {
                object_type: sqlparser::ast::DiscardObject::ALL,
            } => self.effects.push(SqlEffect::Deallocate { name: None }),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        match s {
            Statement::Explain {
                analyze, options, ..
            } if !explain_runs(*analyze, options.as_deref()) => {
                self.plan_only = self.plan_only.saturating_sub(1);
            }
            Statement::Prepare { name, .. } if self.acc.len() > 1 => {
                if let Some(inner) = self.acc.pop() {
                    self.effects.push(SqlEffect::Prepare {
                        name: stmt_name(name),
                        class: inner.class,
                    });
                    if let Some(outer) = self.acc.last_mut() {
                        outer.merge(inner);
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let me = addr(q);
        if let Some(s) = self.scopes.last_mut()
            && let Some(i) = s.ctes.iter().position(|(_, a)| *a == me)
        {
            s.visible = if s.recursive { s.ctes.len() } else { i };
        }
        if let Some(w) = &q.with {
            let ctes = w
                .cte_tables
                .iter()
                .map(|c| (ident(&c.alias.name), addr(&*c.query)))
                .collect::<Vec<_>>();
            let visible = if w.recursive { ctes.len() } else { 0 };
            self.scopes.push(Scope {
                query: me,
                recursive: w.recursive,
                ctes,
                visible,
            });
        }
        if !q.locks.is_empty() && self.plan_only == 0 {
            self.raise(Class::Write, || {
                "SELECT … FOR UPDATE/SHARE locks rows: write".into()
            });
        }
        if q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            self.unknown("a non-Postgres query clause");
        }
        self.set_expr_tables(&q.body);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        let me = addr(q);
        if self.scopes.last().is_some_and(|s| s.query == me) {
            self.scopes.pop();
        }
        if let Some(s) = self.scopes.last_mut()
            && let Some(i) = s.ctes.iter().position(|(_, a)| *a == me)
        {
            s.visible = s.visible.max(i + 1);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if let Some(into) = &s.into {
            if self.plan_only == 0 {
                self.raise(Class::Write, || "SELECT INTO creates a table: write".into());
            }
            for t in &into.targets {
                match t {
                    Expr::Identifier(i) => self.add_table(&ObjectName::from(vec![i.clone()])),
                    Expr::CompoundIdentifier(p) => self.add_table(&ObjectName::from(p.clone())),
                    _ => self.unknown("a SELECT INTO target"),
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, name: &ObjectName) -> ControlFlow<()> {
        let me = addr(name);
        if self.fn_names.contains(&me) || self.is_cte(name) {
            return ControlFlow::Continue(());
        }
        self.add_table(name);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                self.fn_names.push(addr(name));
                self.function(name);
            }
            TableFactor::Function { name, .. } => self.function(name),
            TableFactor::Table { .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. }
            | TableFactor::TableFunction { .. } => {}
            TableFactor::UNNEST { .. } => {
                self.functions.insert("unnest".into());
            }
            _ => self.unknown("this FROM item"),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Function(f) => self.function(&f.name),
            Expr::BinaryOp { op, .. } => self.operator(op),
            Expr::AnyOp { compare_op, .. } | Expr::AllOp { compare_op, .. } => {
                self.operator(compare_op)
            }
            Expr::Convert { .. }
            | Expr::Struct { .. }
            | Expr::Named { .. }
            | Expr::Dictionary(_)
            | Expr::Map(_)
            | Expr::Lambda(_)
            | Expr::OuterJoin(_)
            | Expr::Prior(_)
            | Expr::MatchAgainst { .. }
            | Expr::MemberOf(_) => self.unknown("a non-Postgres expression"),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
