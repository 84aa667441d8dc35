//! Reviewed catalogues for SQL classification: dangerous built-in functions, pure built-in
//! functions, harmless `SET` parameters and well-known `pg_catalog` relations; and the
//! settings the proxy pins because they change how the server lexes a statement
//! ([`pinned_setting`]).
//!
//! Invariants (checked by tests): every entry is lower-case and appears once; no pure
//! function is also dangerous (exactly or by prefix). A function found in neither list is
//! `unknown` unless the config's `[policy] trusted_functions` names it. Trusting a function
//! never lowers the class of a dangerous one.
//!
//! Review rule for changes: a function is *pure* only if calling it cannot change data,
//! server state, session authorization or files, cannot run SQL given as text and cannot
//! reach the network. Anything doubtful stays out (and is then `unknown`).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::policy::Class;

/// Dangerous built-ins by exact name, with the class they raise a statement to.
#[rustfmt::skip]
pub const DANGEROUS_FUNCTIONS: &[(&str, Class)] = &[
    // server signalling and server state
    ("pg_terminate_backend", Class::Admin),
    ("pg_cancel_backend", Class::Admin),
    ("pg_reload_conf", Class::Admin),
    ("pg_rotate_logfile", Class::Admin),
    ("pg_rotate_logfile_old", Class::Admin),
    ("pg_promote", Class::Admin),
    ("pg_switch_wal", Class::Admin),
    ("pg_switch_xlog", Class::Admin),
    ("pg_log_backend_memory_contexts", Class::Admin),
    ("pg_log_standby_snapshot", Class::Admin),
    ("pg_import_system_collations", Class::Admin),
    ("pg_drop_replication_slot", Class::Admin),
    ("pg_replication_slot_advance", Class::Admin),
    ("pg_sync_replication_slots", Class::Admin),
    ("pg_logical_emit_message", Class::Admin),
    ("pg_stat_statements_reset", Class::Admin),
    ("pg_start_backup", Class::Admin),
    ("pg_stop_backup", Class::Admin),
    ("pg_backup_start", Class::Admin),
    ("pg_backup_stop", Class::Admin),
    ("set_config", Class::Admin),
    // files and large objects
    ("pg_stat_file", Class::Admin),
    ("pg_current_logfile", Class::Admin),
    ("loread", Class::Admin),
    ("lowrite", Class::Admin),
    // data and sequence changes, cross-session side effects
    ("nextval", Class::Write),
    ("setval", Class::Write),
    ("pg_notify", Class::Write),
    // assign the session's transaction an id (WAL, and a read-only transaction refuses it)
    ("txid_current", Class::Write),
    ("pg_current_xact_id", Class::Write),
    // functions that run SQL given as text
    ("ts_stat", Class::Code),
    ("ts_rewrite", Class::Code),
];

/// Dangerous built-ins by name prefix (checked after the exact list).
#[rustfmt::skip]
pub const DANGEROUS_PREFIXES: &[(&str, Class)] = &[
    ("dblink", Class::Code),          // dblink, dblink_exec, dblink_connect…: other servers
    ("query_to_xml", Class::Code),    // runs the query text it is given
    ("cursor_to_xml", Class::Code),   // reads a cursor by name
    ("table_to_xml", Class::Code),    // reads a table named in a string
    ("schema_to_xml", Class::Code),   // reads every table of a schema
    ("database_to_xml", Class::Code), // reads every table of the database
    ("crosstab", Class::Code),        // tablefunc: runs the query text it is given
    ("lo_", Class::Admin),            // large objects: lo_import, lo_export, lo_unlink…
    ("pg_read_", Class::Admin),       // pg_read_file, pg_read_binary_file
    ("pg_ls_", Class::Admin),         // pg_ls_dir, pg_ls_logdir, pg_ls_waldir…
    ("pg_file_", Class::Admin),       // adminpack: pg_file_write, pg_file_unlink…
    ("pg_stat_reset", Class::Admin),  // every statistics reset
    ("pg_create_", Class::Admin),     // replication slots, restore points
    ("pg_copy_", Class::Admin),       // replication slot copies
    ("pg_logical_slot_", Class::Admin),
    ("pg_replication_origin", Class::Admin),
    ("pg_wal_replay_", Class::Admin), // pause / resume recovery
    ("binary_upgrade_", Class::Admin),
    ("pg_advisory", Class::Write), // advisory locks block other sessions
    ("pg_try_advisory", Class::Write),
];

/// Built-ins known to be pure (read-only, no side effects beyond the session's snapshot).
/// Includes everything psql's `\d`, `\dt`, `\l`, `\df`, `\dn`, `\du`, `\dx` (and their `+`
/// forms) and pgbench's select-only / TPC-B scripts call.
#[rustfmt::skip]
pub const PURE_FUNCTIONS: &[&str] = &[
    // constructors sqlparser may present as calls (reserved words: no user function can
    // have these names)
    "array", "row",
    // conditionals
    "coalesce", "nullif", "greatest", "least", "num_nonnulls", "num_nulls",
    // mathematics
    "abs", "cbrt", "ceil", "ceiling", "degrees", "div", "exp", "factorial", "floor", "gcd",
    "lcm", "ln", "log", "log10", "min_scale", "mod", "pi", "power", "pow", "radians", "round",
    "scale", "sign", "sqrt", "trim_scale", "trunc", "width_bucket", "random", "random_normal",
    "setseed", "acos", "acosd", "asin", "asind", "atan", "atand", "atan2", "atan2d", "cos",
    "cosd", "cot", "cotd", "sin", "sind", "tan", "tand", "sinh", "cosh", "tanh", "asinh",
    "acosh", "atanh", "erf", "erfc",
    // strings and bytes
    "ascii", "bit_length", "btrim", "char_length", "character_length", "chr", "concat",
    "concat_ws", "format", "initcap", "left", "length", "lower", "lpad", "ltrim", "md5",
    "normalize", "octet_length", "overlay", "parse_ident", "position", "quote_ident",
    "quote_literal", "quote_nullable", "regexp_count", "regexp_instr", "regexp_like",
    "regexp_match", "regexp_matches", "regexp_replace", "regexp_split_to_array",
    "regexp_split_to_table", "regexp_substr", "repeat", "replace", "reverse", "right", "rpad",
    "rtrim", "split_part", "starts_with", "string_to_array", "string_to_table", "strpos",
    "substr", "substring", "to_ascii", "to_hex", "translate", "trim", "unistr", "upper",
    "convert", "convert_from", "convert_to", "decode", "encode", "get_bit", "get_byte",
    "set_bit", "set_byte", "sha224", "sha256", "sha384", "sha512", "bit_count", "crc32",
    "crc32c", "to_char", "to_number", "casefold",
    // dates and times
    "age", "clock_timestamp", "current_date", "current_time", "current_timestamp", "date_add",
    "date_bin", "date_part", "date_subtract", "date_trunc", "extract", "isfinite",
    "justify_days", "justify_hours", "justify_interval", "localtime", "localtimestamp",
    "make_date", "make_interval", "make_time", "make_timestamp", "make_timestamptz", "now",
    "statement_timestamp", "timeofday", "transaction_timestamp", "to_date", "to_timestamp",
    "timezone", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
    // arrays, ranges, enums, set-returning helpers
    "array_append", "array_cat", "array_dims", "array_fill", "array_length", "array_lower",
    "array_ndims", "array_position", "array_positions", "array_prepend", "array_remove",
    "array_replace", "array_reverse", "array_sample", "array_shuffle", "array_sort",
    "array_to_string", "array_upper", "cardinality", "trim_array", "unnest", "generate_series",
    "generate_subscripts", "enum_first", "enum_last", "enum_range", "isempty", "lower_inc",
    "upper_inc", "lower_inf", "upper_inf", "range_merge", "multirange", "int4range",
    "int8range", "numrange", "tsrange", "tstzrange", "daterange", "int4multirange",
    "int8multirange", "nummultirange", "tsmultirange", "tstzmultirange", "datemultirange",
    // aggregates
    "array_agg", "avg", "bit_and", "bit_or", "bit_xor", "bool_and", "bool_or", "count", "every",
    "json_agg", "json_agg_strict", "json_object_agg", "jsonb_agg", "jsonb_agg_strict",
    "jsonb_object_agg", "max", "min", "range_agg", "range_intersect_agg", "string_agg", "sum",
    "xmlagg", "corr", "covar_pop", "covar_samp", "regr_avgx", "regr_avgy", "regr_count",
    "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "stddev",
    "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "mode", "percentile_cont",
    "percentile_disc", "grouping", "any_value",
    // window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // json
    "to_json", "to_jsonb", "array_to_json", "row_to_json", "json_build_array",
    "jsonb_build_array", "json_build_object", "jsonb_build_object", "json_object",
    "jsonb_object", "json_array_elements", "jsonb_array_elements", "json_array_elements_text",
    "jsonb_array_elements_text", "json_array_length", "jsonb_array_length", "json_each",
    "jsonb_each", "json_each_text", "jsonb_each_text", "json_extract_path",
    "jsonb_extract_path", "json_extract_path_text", "jsonb_extract_path_text",
    "json_object_keys", "jsonb_object_keys", "json_populate_record", "jsonb_populate_record",
    "json_populate_recordset", "jsonb_populate_recordset", "json_to_record", "jsonb_to_record",
    "json_to_recordset", "jsonb_to_recordset", "json_strip_nulls", "jsonb_strip_nulls",
    "jsonb_set", "jsonb_set_lax", "jsonb_insert", "jsonb_path_exists", "jsonb_path_match",
    "jsonb_path_query", "jsonb_path_query_array", "jsonb_path_query_first",
    "jsonb_path_exists_tz", "jsonb_path_match_tz", "jsonb_path_query_tz",
    "jsonb_path_query_array_tz", "jsonb_path_query_first_tz", "jsonb_pretty", "json_typeof",
    "jsonb_typeof", "json_scalar",
    // uuid, network, geometry, text search, xml
    "gen_random_uuid", "uuidv4", "uuidv7", "uuid_extract_timestamp", "uuid_extract_version",
    "abbrev", "broadcast", "family", "host", "hostmask", "inet_merge", "inet_same_family",
    "masklen", "netmask", "network", "set_masklen", "macaddr8_set7bit", "area", "center",
    "diameter", "height", "width", "isclosed", "isopen", "npoints", "pclose", "popen",
    "radius", "point", "box", "circle", "lseg", "path", "polygon", "bound_box", "to_tsvector",
    "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery", "ts_rank",
    "ts_rank_cd", "ts_headline", "setweight", "strip", "numnode", "querytree",
    "tsvector_to_array", "array_to_tsvector", "ts_delete", "ts_filter",
    "get_current_ts_config", "ts_debug", "ts_lexize", "ts_parse", "ts_token_type",
    "xmlcomment", "xmlconcat", "xmlelement", "xmlforest", "xmlpi", "xmlroot", "xmlexists",
    "xml_is_well_formed", "xml_is_well_formed_document", "xml_is_well_formed_content",
    "xpath", "xpath_exists",
    // type names used as cast functions
    "bool", "int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar", "date",
    "time", "timestamp", "timestamptz", "interval", "inet", "cidr", "macaddr", "uuid", "name",
    "oid", "regclass", "jsonb", "json", "bpchar",
    // type lookups and input checks
    "format_type", "pg_typeof", "to_regclass", "to_regtype", "to_regtypemod", "to_regproc",
    "to_regprocedure", "to_regoper", "to_regoperator", "to_regrole", "to_regnamespace",
    "to_regcollation", "pg_input_is_valid", "pg_input_error_info", "pg_basetype",
    // session and server information
    "current_catalog", "current_database", "current_query", "current_role", "current_schema",
    "current_schemas", "current_user", "session_user", "user", "system_user",
    "current_setting", "inet_client_addr", "inet_client_port", "inet_server_addr",
    "inet_server_port", "pg_backend_pid", "pg_blocking_pids", "pg_conf_load_time",
    "pg_jit_available", "pg_listening_channels", "pg_my_temp_schema",
    "pg_is_other_temp_schema", "pg_postmaster_start_time", "pg_safe_snapshot_blocking_pids",
    "pg_trigger_depth", "version", "pg_is_in_recovery", "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp", "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn", "pg_current_wal_flush_lsn", "pg_walfile_name",
    "pg_walfile_name_offset", "pg_wal_lsn_diff", "pg_is_wal_replay_paused",
    "pg_get_wal_replay_pause_state", "pg_control_checkpoint", "pg_control_system",
    "pg_control_init", "pg_control_recovery", "pg_notification_queue_usage",
    "pg_current_snapshot", "pg_snapshot_xmin", "pg_snapshot_xmax", "pg_snapshot_xip",
    "pg_visible_in_snapshot", "pg_xact_status",
    "pg_current_xact_id_if_assigned", "pg_export_snapshot",
    "txid_current_if_assigned", "txid_current_snapshot", "txid_snapshot_xip",
    "txid_snapshot_xmax", "txid_snapshot_xmin", "txid_visible_in_snapshot", "txid_status",
    "pg_xact_commit_timestamp", "pg_xact_commit_timestamp_origin", "pg_last_committed_xact",
    "mxid_age", "getdatabaseencoding", "pg_client_encoding", "pg_encoding_to_char",
    "pg_char_to_encoding", "pg_encoding_max_length", "pg_get_keywords",
    "pg_get_backend_memory_contexts", "pg_get_multixact_members", "pg_settings_get_flags",
    "pg_get_catalog_foreign_keys", "pg_stat_clear_snapshot", "pg_stat_get_activity",
    "pg_sequence_last_value", "pg_collation_actual_version",
    // sizes and storage
    "pg_column_compression", "pg_column_size", "pg_database_size", "pg_indexes_size",
    "pg_relation_size", "pg_size_bytes", "pg_size_pretty", "pg_table_size",
    "pg_tablespace_size", "pg_total_relation_size", "pg_relation_filenode",
    "pg_relation_filepath", "pg_filenode_relation", "pg_partition_tree",
    "pg_partition_ancestors", "pg_partition_root", "pg_tablespace_databases",
    "pg_tablespace_location",
    // privileges and visibility
    "has_any_column_privilege", "has_column_privilege", "has_database_privilege",
    "has_foreign_data_wrapper_privilege", "has_function_privilege", "has_language_privilege",
    "has_parameter_privilege", "has_schema_privilege", "has_sequence_privilege",
    "has_server_privilege", "has_table_privilege", "has_tablespace_privilege",
    "has_type_privilege", "pg_has_role", "row_security_active", "acldefault", "aclexplode",
    "makeaclitem", "pg_collation_is_visible", "pg_conversion_is_visible",
    "pg_function_is_visible", "pg_opclass_is_visible", "pg_operator_is_visible",
    "pg_opfamily_is_visible", "pg_statistics_obj_is_visible", "pg_table_is_visible",
    "pg_ts_config_is_visible", "pg_ts_dict_is_visible", "pg_ts_parser_is_visible",
    "pg_ts_template_is_visible", "pg_type_is_visible",
    // catalog decompilers and descriptions (psql's \d family)
    "pg_get_constraintdef", "pg_get_expr", "pg_get_functiondef", "pg_get_function_arguments",
    "pg_get_function_identity_arguments", "pg_get_function_result", "pg_get_function_sqlbody",
    "pg_get_indexdef", "pg_get_partkeydef", "pg_get_partition_constraintdef",
    "pg_get_ruledef", "pg_get_serial_sequence", "pg_get_statisticsobjdef",
    "pg_get_statisticsobjdef_columns", "pg_get_statisticsobjdef_expressions",
    "pg_get_triggerdef", "pg_get_userbyid", "pg_get_viewdef", "pg_get_publication_tables",
    "pg_get_replica_identity_index", "pg_get_object_address", "pg_get_acl",
    "pg_relation_is_publishable", "pg_relation_is_updatable", "pg_column_is_updatable",
    "pg_identify_object", "pg_identify_object_as_address", "pg_describe_object",
    "pg_index_column_has_property", "pg_index_has_property", "pg_indexam_has_property",
    "pg_options_to_table", "obj_description", "col_description", "shobj_description",
    // sequences: reading the session's last value only
    "currval", "lastval",
];

/// Parameters whose `SET` / `RESET` only shapes the caller's own session (`read`).
/// `role` and `session_authorization` are `privilege`; any other parameter is `admin`.
#[rustfmt::skip]
pub const HARMLESS_SETTINGS: &[&str] = &[
    "search_path", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
    "idle_session_timeout", "transaction_timeout", "application_name", "timezone", "datestyle",
    "intervalstyle", "client_encoding", "client_min_messages", "extra_float_digits",
    "work_mem", "maintenance_work_mem", "hash_mem_multiplier", "temp_buffers", "bytea_output",
    "standard_conforming_strings", "escape_string_warning", "transaction_isolation",
    "transaction_read_only", "transaction_deferrable", "default_transaction_isolation",
    "default_transaction_read_only", "default_transaction_deferrable", "synchronous_commit",
    "lc_monetary", "lc_numeric", "lc_time", "enable_bitmapscan", "enable_gathermerge",
    "enable_hashagg", "enable_hashjoin", "enable_incremental_sort", "enable_indexscan",
    "enable_indexonlyscan", "enable_material", "enable_memoize", "enable_mergejoin",
    "enable_nestloop", "enable_parallel_append", "enable_parallel_hash",
    "enable_partition_pruning", "enable_partitionwise_join", "enable_partitionwise_aggregate",
    "enable_presorted_aggregate", "enable_seqscan", "enable_sort", "enable_tidscan",
    "random_page_cost", "seq_page_cost", "cpu_tuple_cost", "cpu_index_tuple_cost",
    "cpu_operator_cost", "parallel_setup_cost", "parallel_tuple_cost", "effective_cache_size",
    "effective_io_concurrency", "jit", "geqo", "join_collapse_limit", "from_collapse_limit",
    "default_statistics_target", "plan_cache_mode", "max_parallel_workers_per_gather",
    "row_security", "xmlbinary", "xmloption", "gin_fuzzy_search_limit",
    "default_text_search_config", "default_tablespace", "temp_tablespaces",
    "check_function_bodies", "quote_all_identifiers", "array_nulls", "default_toast_compression",
    "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
    "tcp_user_timeout", "client_connection_check_interval", "cursor_tuple_fraction",
    "constraint_exclusion", "vacuum_cost_delay", "vacuum_cost_limit",
];

/// `pg_catalog` relations often named without a schema. `pg_catalog` is searched before
/// the `search_path`, so an unqualified `pg_class` is `pg_catalog.pg_class`.
#[rustfmt::skip]
pub const CATALOG_RELATIONS: &[&str] = &[
    "pg_aggregate", "pg_am", "pg_amop", "pg_amproc", "pg_attrdef", "pg_attribute",
    "pg_auth_members", "pg_authid", "pg_cast", "pg_class", "pg_collation", "pg_constraint",
    "pg_conversion", "pg_database", "pg_db_role_setting", "pg_default_acl", "pg_depend",
    "pg_description", "pg_enum", "pg_event_trigger", "pg_extension", "pg_foreign_data_wrapper",
    "pg_foreign_server", "pg_foreign_table", "pg_index", "pg_inherits", "pg_init_privs",
    "pg_language", "pg_largeobject", "pg_largeobject_metadata", "pg_namespace", "pg_opclass",
    "pg_operator", "pg_opfamily", "pg_parameter_acl", "pg_partitioned_table", "pg_policy",
    "pg_proc", "pg_publication", "pg_publication_namespace", "pg_publication_rel", "pg_range",
    "pg_replication_origin", "pg_rewrite", "pg_seclabel", "pg_sequence", "pg_shdepend",
    "pg_shdescription", "pg_shseclabel", "pg_statistic", "pg_statistic_ext",
    "pg_statistic_ext_data", "pg_subscription", "pg_subscription_rel", "pg_tablespace",
    "pg_transform", "pg_trigger", "pg_ts_config", "pg_ts_config_map", "pg_ts_dict",
    "pg_ts_parser", "pg_ts_template", "pg_type", "pg_user_mapping",
    "pg_available_extensions", "pg_available_extension_versions",
    "pg_backend_memory_contexts", "pg_config", "pg_cursors", "pg_file_settings", "pg_group",
    "pg_hba_file_rules", "pg_ident_file_mappings", "pg_indexes", "pg_locks", "pg_matviews",
    "pg_policies", "pg_prepared_statements", "pg_prepared_xacts", "pg_publication_tables",
    "pg_replication_origin_status", "pg_replication_slots", "pg_roles", "pg_rules",
    "pg_seclabels", "pg_sequences", "pg_settings", "pg_shadow", "pg_shmem_allocations",
    "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_tables", "pg_timezone_abbrevs",
    "pg_timezone_names", "pg_user", "pg_user_mappings", "pg_views", "pg_wait_events",
    "pg_stat_activity", "pg_stat_all_indexes", "pg_stat_all_tables", "pg_stat_archiver",
    "pg_stat_bgwriter", "pg_stat_checkpointer", "pg_stat_database",
    "pg_stat_database_conflicts", "pg_stat_gssapi", "pg_stat_io", "pg_stat_progress_analyze",
    "pg_stat_progress_basebackup", "pg_stat_progress_cluster", "pg_stat_progress_copy",
    "pg_stat_progress_create_index", "pg_stat_progress_vacuum", "pg_stat_recovery_prefetch",
    "pg_stat_replication", "pg_stat_replication_slots", "pg_stat_slru", "pg_stat_ssl",
    "pg_stat_subscription", "pg_stat_subscription_stats", "pg_stat_sys_indexes",
    "pg_stat_sys_tables", "pg_stat_user_functions", "pg_stat_user_indexes",
    "pg_stat_user_tables", "pg_stat_wal", "pg_stat_wal_receiver", "pg_stat_xact_all_tables",
    "pg_stat_xact_sys_tables", "pg_stat_xact_user_functions", "pg_stat_xact_user_tables",
    "pg_statio_all_indexes", "pg_statio_all_sequences", "pg_statio_all_tables",
    "pg_statio_sys_indexes", "pg_statio_sys_sequences", "pg_statio_sys_tables",
    "pg_statio_user_indexes", "pg_statio_user_sequences", "pg_statio_user_tables",
];

/// How the catalogue sees one function name (already normalised, `pg_catalog.` stripped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionKind {
    /// In the dangerous catalogue: raises the statement to this class.
    Dangerous(Class),
    /// In the pure catalogue.
    Pure,
    /// In neither: unknown unless trusted.
    Unlisted,
}

static FUNCTIONS: LazyLock<HashMap<&'static str, FunctionKind>> = LazyLock::new(|| {
    let mut m = HashMap::with_capacity(PURE_FUNCTIONS.len() + DANGEROUS_FUNCTIONS.len());
    for f in PURE_FUNCTIONS {
        m.insert(*f, FunctionKind::Pure);
    }
    // Dangerous entries are inserted last so that they win over any accidental overlap.
    for (f, c) in DANGEROUS_FUNCTIONS {
        m.insert(*f, FunctionKind::Dangerous(*c));
    }
    m
});

static SETTINGS: LazyLock<std::collections::HashSet<&'static str>> =
    LazyLock::new(|| HARMLESS_SETTINGS.iter().copied().collect());

static RELATIONS: LazyLock<std::collections::HashSet<&'static str>> =
    LazyLock::new(|| CATALOG_RELATIONS.iter().copied().collect());

/// Looks up a built-in function by its bare, lower-case name.
pub fn function_kind(name: &str) -> FunctionKind {
    for (prefix, class) in DANGEROUS_PREFIXES {
        if name.starts_with(prefix) {
            return FunctionKind::Dangerous(*class);
        }
    }
    FUNCTIONS
        .get(name)
        .copied()
        .unwrap_or(FunctionKind::Unlisted)
}

/// Whether `SET name` only shapes the caller's own session.
pub fn harmless_setting(name: &str) -> bool {
    SETTINGS.contains(name)
}

/// A harmless setting that changes how the server *reads* SQL text: the proxy reads every
/// statement as UTF-8 with standard-conforming strings, so these may only ever hold the
/// pinned value. `client_encoding = SJIS` lets a multi-byte character swallow a backslash;
/// `standard_conforming_strings = off` makes `\'` escape a quote in a plain string. Both
/// make one statement to the proxy several to the server. (`backslash_quote` and
/// `escape_string_warning` do not: the first only turns `\'` into an error, the second a
/// warning.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pinned {
    ClientEncoding,
    StandardConformingStrings,
}

impl Pinned {
    pub fn name(self) -> &'static str {
        match self {
            Pinned::ClientEncoding => "client_encoding",
            Pinned::StandardConformingStrings => "standard_conforming_strings",
        }
    }

    /// The only value the setting may take.
    pub fn value(self) -> &'static str {
        match self {
            Pinned::ClientEncoding => "UTF8",
            Pinned::StandardConformingStrings => "on",
        }
    }

    /// Whether `value` (as a client or the server spells it) is the pinned value.
    pub fn holds(self, value: &str) -> bool {
        match self {
            Pinned::ClientEncoding => is_utf8_encoding(value),
            Pinned::StandardConformingStrings => parse_bool(value) == Some(true),
        }
    }
}

/// The pinned setting of this (lower-case) name, if it is one.
pub fn pinned_setting(name: &str) -> Option<Pinned> {
    match name {
        "client_encoding" => Some(Pinned::ClientEncoding),
        "standard_conforming_strings" => Some(Pinned::StandardConformingStrings),
        _ => None,
    }
}

/// An encoding name as PostgreSQL compares them (`clean_encoding_name`): letters and digits
/// only, lower-case. `UTF-8`, `utf8` and `Unicode` are all `utf8`/`unicode`.
fn clean_encoding_name(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether PostgreSQL takes `name` for the UTF8 encoding.
pub fn is_utf8_encoding(name: &str) -> bool {
    matches!(clean_encoding_name(name).as_str(), "utf8" | "unicode")
}

/// Whether PostgreSQL takes `name` for SQL_ASCII (bytes passed as they are, no conversion).
pub fn is_sql_ascii_encoding(name: &str) -> bool {
    clean_encoding_name(name) == "sqlascii"
}

/// A boolean setting's value as PostgreSQL's `parse_bool` reads it: `on`, `off`, `1`, `0`,
/// and any prefix of `true`, `false`, `yes`, `no` (case-insensitive, surrounding spaces
/// ignored); `None` when PostgreSQL would reject it.
pub fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim().to_ascii_lowercase();
    let prefix_of = |word: &str| !v.is_empty() && word.starts_with(v.as_str());
    match v.as_str() {
        "on" | "1" => Some(true),
        "off" | "of" | "0" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

/// Whether an unqualified relation name is a well-known `pg_catalog` relation.
pub fn catalog_relation(name: &str) -> bool {
    RELATIONS.contains(name)
}
