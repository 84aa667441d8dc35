//! `cargo bench --bench classify`: what one SQL classification costs, cold (sqlparser, then
//! PostgreSQL's grammar confirming the read) and from the cache, for a ~200-character SELECT.
//! Also each parser on its own, to show where the cold time goes. Targets (issue 12): cold
//! ≤ 60 µs, a cache hit ≤ 1 µs. Figures only: this never fails on timing. Under
//! `cargo test --all-targets` (no `--bench` argument) it runs each step once as a smoke test.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use jitgate::policy::Class;
use jitgate::policy::cache::ClassifierCache;
use jitgate::policy::sql::{SqlOptions, TargetCatalog, analyze_sql, analyze_tokens_on, shape};

const SELECT: &str = "SELECT a.aid, a.abalance, b.bbalance, t.tbalance FROM pgbench_accounts a \
    JOIN pgbench_branches b ON a.bid = b.bid JOIN pgbench_tellers t ON t.bid = b.bid \
    WHERE a.aid = 12345 AND lower(a.filler) <> 'x' ORDER BY a.aid DESC LIMIT 10";

/// Median time per call over `rounds` batches of `batch` calls.
fn per_call(rounds: usize, batch: usize, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed() / u32::try_from(batch).unwrap_or(u32::MAX)
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (rounds, batch) = if measuring { (21, 2_000) } else { (1, 1) };
    let trusted = HashSet::new();
    let opts = SqlOptions {
        trusted_functions: &trusted,
    };
    assert_eq!(analyze_sql(SELECT, &opts).classification.class, Class::Read);

    // `CLASSIFY_PROFILE=N`: only N cold classifications, for a profiler (`valgrind --tool=
    // callgrind` counts instructions, steady on a busy machine, unlike the timings below).
    if let Some(n) = std::env::var("CLASSIFY_PROFILE")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        for _ in 0..n {
            black_box(analyze_sql(black_box(SELECT), &opts));
        }
        return;
    }
    let both = per_call(rounds, batch, || {
        black_box(analyze_sql(black_box(SELECT), &opts));
    });
    let sqlparser_only = per_call(rounds, batch, || {
        let dialect = sqlparser::dialect::PostgreSqlDialect {};
        black_box(sqlparser::parser::Parser::parse_sql(&dialect, black_box(SELECT)).ok());
    });
    let pg_query_only = per_call(rounds, batch, || {
        black_box(pg_query::parse(black_box(SELECT), pg_query::ParserOptions::DEFAULT).ok());
    });
    // libpg_query's grammar alone, without the protobuf tree `parse` builds, encodes (upb, in
    // C), decodes (prost) and summarises: the part of `parse` no caller can avoid.
    let pg_query_grammar = per_call(rounds, batch, || {
        black_box(pg_query::split_with_parser(black_box(SELECT)).ok());
    });
    let tokenize_only = per_call(rounds, batch, || {
        black_box(jitgate::policy::sql::tokenize(black_box(SELECT)).ok());
    });
    // What a relay's cache miss costs: the shape key and both parsers on one tokenization
    // (plus making an empty cache, well under a microsecond).
    let miss = per_call(rounds, batch, || {
        let cache = ClassifierCache::new(16, HashSet::new());
        black_box(cache.analyze(black_box(SELECT)));
    });
    // The miss's shape and analysis as they were done before: each tokenizing on its own.
    let miss_before = per_call(rounds, batch, || {
        black_box(shape::shape(black_box(SELECT)));
        black_box(analyze_sql(black_box(SELECT), &opts));
    });
    let miss_now = per_call(rounds, batch, || {
        let tokens = jitgate::policy::sql::tokenize(black_box(SELECT));
        let key = tokens
            .as_ref()
            .ok()
            .and_then(|t| shape::shape_of_tokens(SELECT, t));
        black_box(key);
        let catalog = TargetCatalog::NotConsulted;
        black_box(analyze_tokens_on(SELECT, tokens, &opts, &catalog));
    });
    let cache = ClassifierCache::new(10_000, HashSet::new());
    cache.analyze(SELECT);
    let hit = per_call(rounds, batch * 50, || {
        black_box(cache.analyze(black_box(SELECT)));
    });
    // A shape hit: same statement, other literals (the common case of simple-protocol clients).
    let other = SELECT.replace("12345", "54321");
    let shape_hit = per_call(rounds, batch * 50, || {
        black_box(cache.analyze(black_box(&other)));
    });

    println!(
        "classify bench: a {}-character SELECT, median per call",
        SELECT.len()
    );
    println!(
        "  cold, both parsers (analyze_sql)   {:>9.2?}   target <= 60µs",
        both
    );
    println!(
        "    sqlparser parse alone            {:>9.2?}",
        sqlparser_only
    );
    println!(
        "    pg_query parse alone             {:>9.2?}",
        pg_query_only
    );
    println!(
        "      its grammar alone (no tree)    {:>9.2?}",
        pg_query_grammar
    );
    println!(
        "    sqlparser tokenize alone         {:>9.2?}",
        tokenize_only
    );
    println!(
        "    the two walks and checks (rest)  {:>9.2?}",
        both.saturating_sub(sqlparser_only + pg_query_only)
    );
    println!("  cache miss (shape + both parsers)  {:>9.2?}", miss);
    println!(
        "    shape, analysis: 2 tokenizations {:>9.2?}   (before)",
        miss_before
    );
    println!(
        "    shape, analysis: 1 tokenization  {:>9.2?}   (now)",
        miss_now
    );
    println!(
        "  cache hit (exact text)             {:>9.2?}   target <= 1µs",
        hit
    );
    println!("  cache hit (shape: other literals)  {:>9.2?}", shape_hit);
}
