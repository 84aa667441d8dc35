//! The node kinds of PostgreSQL's raw parse tree (pg_query's protobuf message names) a
//! read may hold, by review.
//!
//! Invariant: a kind is listed in [`READ_NODES`] only if it cannot, by itself, change
//! data, take row locks, create objects or run code other than the functions the tree
//! names (those are judged by the function catalogue). Every kind not listed in either
//! list (including any kind a future libpg_query adds) makes the text `unknown`.

/// Node kinds allowed anywhere in a read.
#[rustfmt::skip]
pub(super) const READ_NODES: &[&str] = &[
    // the envelope and plain values
    "ParseResult", "RawStmt", "Node", "Integer", "Float", "Boolean", "String", "BitString",
    "List", "AConst", "Alias",
    // statements that are reads (the statement-level checks in `tree.rs` narrow some)
    "SelectStmt", "ExplainStmt", "VariableSetStmt", "VariableShowStmt", "TransactionStmt",
    "ListenStmt", "UnlistenStmt", "DiscardStmt", "DeclareCursorStmt", "FetchStmt",
    "ClosePortalStmt", "PrepareStmt", "ExecuteStmt", "DeallocateStmt", "CopyStmt",
    // FROM items, names and clauses
    "RangeVar", "RangeSubselect", "RangeFunction", "RangeTableFunc", "RangeTableFuncCol",
    "RangeTableSample", "JoinExpr", "WithClause", "CommonTableExpr", "CteSearchClause",
    "CteCycleClause", "ResTarget", "SortBy", "WindowDef", "GroupingSet", "DefElem",
    "TypeName", "CollateClause",
    // expressions of the raw grammar
    "ColumnRef", "ParamRef", "AExpr", "TypeCast", "FuncCall", "NamedArgExpr", "AStar",
    "AIndices", "AIndirection", "AArrayExpr", "BoolExpr", "SubLink", "CaseExpr", "CaseWhen",
    "RowExpr", "CoalesceExpr", "MinMaxExpr", "SqlValueFunction", "NullTest", "BooleanTest",
    "GroupingFunc", "XmlExpr", "XmlSerialize",
    // SQL/JSON
    "JsonFormat", "JsonReturning", "JsonValueExpr", "JsonIsPredicate", "JsonBehavior",
    "JsonOutput", "JsonArgument", "JsonFuncExpr", "JsonTablePathSpec", "JsonTable",
    "JsonTableColumn", "JsonKeyValue", "JsonParseExpr", "JsonScalarExpr",
    "JsonSerializeExpr", "JsonObjectConstructor", "JsonArrayConstructor",
    "JsonArrayQueryConstructor", "JsonAggConstructor", "JsonObjectAgg", "JsonArrayAgg",
    // parts found only inside a data-modifying statement, which is judged itself
    "OnConflictClause", "InferClause", "IndexElem", "MergeWhenClause", "ReturningClause",
    "ReturningOption", "MultiAssignRef", "SetToDefault", "CurrentOfExpr", "MergeSupportFunc",
];

/// Node kinds that change data, lock rows or create a table when the statement runs. Under
/// an `EXPLAIN` that does not analyse they are only planned, so they are allowed there.
#[rustfmt::skip]
pub(super) const RUNS_MODIFYING: &[&str] = &[
    "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "IntoClause", "LockingClause",
    "CreateTableAsStmt",
];

/// Functions PostgreSQL's grammar itself writes, as `pg_catalog.name`, in place of SQL
/// syntax (`EXTRACT`, `TRIM`, `LIKE … ESCAPE`, `AT TIME ZONE`, …). Qualified with
/// `pg_catalog`, they resolve there only, and all are pure.
#[rustfmt::skip]
pub(super) const GRAMMAR_FUNCTIONS: &[&str] = &[
    "btrim", "extract", "is_normalized", "json_object", "like_escape", "ltrim", "normalize",
    "overlaps", "overlay", "pg_collation_for", "position", "rtrim", "similar_to_escape",
    "substring", "system_user", "timezone", "xmlexists",
];

/// `TABLESAMPLE` methods of the core server.
pub(super) const SAMPLE_METHODS: &[&str] = &["system", "bernoulli"];
