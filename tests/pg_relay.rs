//! psql and pgbench through the proxy: queries, multi-statement strings, errors, notices,
//! \copy both ways, meta-commands, LISTEN/NOTIFY, Ctrl-C, and pgbench in all three modes.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::clients::{pgbench_figure, psql_script};
use support::proc::{output_text, reader_thread, wait_child};
use support::{ALICE_PASSWORD, Env, TempDir, pgbench, psql, psql_cmd, psql_ok, send_signal};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn psql_queries_and_multi_statement_strings() {
    let env = Env::new();
    assert_eq!(env.query("select 1 + 1"), "2");
    // psql 15 prints the result of every statement of a multi-statement string.
    assert_eq!(env.query("select 'a'; select 'b'; select 'c'"), "a\nb\nc");
    let out = env.query(
        "create table t (id int primary key, v text); \
         insert into t select g, 'v' || g from generate_series(1, 100) g; \
         select count(*), min(v), max(id) from t",
    );
    assert_eq!(out.lines().last(), Some("100|v1|100"), "{out}");
    // A multi-statement string is one implicit transaction: a failure undoes all of it.
    let out = psql(
        &env.alice(),
        ALICE_PASSWORD,
        &["-c", "insert into t values (1000, 'x'); select 1/0"],
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("division by zero"),
        "{}",
        output_text(&out)
    );
    assert_eq!(env.query("select count(*) from t where id = 1000"), "0");
    // Explicit transactions across separate statements.
    let out = psql_script(
        &env.alice(),
        ALICE_PASSWORD,
        &["-A", "-t", "-q"],
        "begin;\ninsert into t values (2000, 'y');\nselect count(*) from t;\nrollback;\n\
         select count(*) from t;\n",
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(stdout(&out).trim(), "101\n100");
}

#[test]
fn psql_errors_carry_their_sqlstate() {
    let env = Env::new();
    let script = "\\set ON_ERROR_STOP 0\n\\set VERBOSITY verbose\n\
                  select * from no_such_table;\n\
                  select 1/0;\n\
                  create table u (a int primary key);\n\
                  insert into u values (1), (1);\n\
                  selec 1;\n\
                  select 'still' || ' here';\n";
    let out = psql_script(&env.alice(), ALICE_PASSWORD, &["-A", "-t", "-q"], script);
    let err = stderr(&out);
    for expected in [
        "ERROR:  42P01: relation \"no_such_table\" does not exist",
        "ERROR:  22012: division by zero",
        "ERROR:  23505: duplicate key value violates unique constraint \"u_pkey\"",
        "ERROR:  42601: syntax error at or near \"selec\"",
    ] {
        assert!(
            err.contains(expected),
            "missing {expected:?}\n{}",
            output_text(&out)
        );
    }
    assert_eq!(stdout(&out).trim(), "still here", "{}", output_text(&out));
}

#[test]
fn psql_shows_notices() {
    let env = Env::new();
    let out = psql(
        &env.alice(),
        ALICE_PASSWORD,
        &[
            "-c",
            "DO $$ BEGIN RAISE NOTICE 'hi'; RAISE WARNING 'careful'; END $$",
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("NOTICE:  hi"),
        "{}",
        output_text(&out)
    );
    assert!(
        stderr(&out).contains("WARNING:  careful"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn psql_copy_both_ways() {
    let env = Env::new();
    let dir = TempDir::new("copy");
    let file = dir.join("rows.tsv");
    let file = file.display();
    env.query(
        "create table src (id int, note text, payload bytea); \
         create table dst (like src); \
         insert into src select g, 'row ' || g || E'\\ttab \\\\ back\\nnewline', \
         decode(md5(g::text), 'hex') from generate_series(1, 5000) g",
    );
    let out = psql_ok(
        &env.alice(),
        ALICE_PASSWORD,
        &["-c", &format!("\\copy src to '{file}'")],
    );
    assert!(out.contains("COPY 5000"), "{out}");
    let written = std::fs::read_to_string(dir.join("rows.tsv")).expect("copy file");
    assert_eq!(written.lines().count(), 5000);
    let out = psql_ok(
        &env.alice(),
        ALICE_PASSWORD,
        &["-c", &format!("\\copy dst from '{file}'")],
    );
    assert!(out.contains("COPY 5000"), "{out}");
    let digest = |table: &str| {
        env.query(&format!(
            "select count(*), md5(string_agg(id || note || encode(payload, 'hex'), ',' \
             order by id)) from {table}"
        ))
    };
    assert_eq!(digest("src"), digest("dst"));
    assert!(digest("dst").starts_with("5000|"));
    // COPY TO STDOUT of a query, straight through.
    let out = psql_ok(
        &env.alice(),
        ALICE_PASSWORD,
        &[
            "-c",
            "\\copy (select id from src where id <= 3 order by id) to stdout",
        ],
    );
    assert_eq!(out.trim(), "1\n2\n3");
}

#[test]
fn psql_meta_commands() {
    let env = Env::new();
    env.query("create table widgets (id serial primary key, label text not null)");
    let d = psql_ok(&env.alice(), ALICE_PASSWORD, &["-c", "\\d widgets"]);
    assert!(d.contains("Table \"public.widgets\""), "{d}");
    assert!(d.contains("label") && d.contains("widgets_pkey"), "{d}");
    let dt = psql_ok(&env.alice(), ALICE_PASSWORD, &["-c", "\\dt"]);
    assert!(dt.contains("widgets") && dt.contains("app"), "{dt}");
    let l = psql_ok(&env.alice(), ALICE_PASSWORD, &["-c", "\\l"]);
    assert!(l.contains(&env.db) && l.contains("template1"), "{l}");
    let dn = psql_ok(&env.alice(), ALICE_PASSWORD, &["-c", "\\dn"]);
    assert!(dn.contains("public"), "{dn}");
}

#[test]
fn psql_listen_notify() {
    let env = Env::new();
    let out = psql_script(
        &env.alice(),
        ALICE_PASSWORD,
        &["-A", "-t", "-q"],
        "LISTEN ch;\nNOTIFY ch, 'hello';\nselect 'after';\n",
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        stdout(&out).contains("Asynchronous notification \"ch\" with payload \"hello\" received"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn psql_ctrl_c_cancels_pg_sleep() {
    let env = Env::new();
    let app = "psql-ctrl-c";
    let mut child = psql_cmd(
        &format!("{} application_name={app}", env.alice()),
        ALICE_PASSWORD,
    )
    .args(["-c", "select pg_sleep(30)"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn psql");
    let out = reader_thread(child.stdout.take().unwrap());
    let err = reader_thread(child.stderr.take().unwrap());
    env.cluster.wait_active(app);
    send_signal(child.id(), "INT");
    let status = wait_child(&mut child, Duration::from_secs(15));
    if status.is_none() {
        let _ = child.kill();
    }
    let err = String::from_utf8_lossy(&err.join().unwrap()).into_owned();
    let out = String::from_utf8_lossy(&out.join().unwrap()).into_owned();
    assert!(
        status.is_some(),
        "psql still running after SIGINT\n{out}\n{err}"
    );
    assert!(
        err.contains("canceling statement due to user request"),
        "stdout: {out}\nstderr: {err}"
    );
    env.assert_still_serving();
}

#[test]
fn pgbench_simple_extended_and_prepared() {
    let env = Env::new();
    let conn = env.alice();
    let init = pgbench(&conn, ALICE_PASSWORD, &["-i", "-s", "1"]);
    assert!(init.status.success(), "pgbench -i\n{}", output_text(&init));
    assert_eq!(env.query("select count(*) from pgbench_accounts"), "100000");
    for mode in ["simple", "extended", "prepared"] {
        let run = pgbench(
            &conn,
            ALICE_PASSWORD,
            &["-M", mode, "-c", "4", "-j", "2", "-t", "200"],
        );
        let text = stdout(&run);
        assert!(
            run.status.success(),
            "pgbench -M {mode}\n{}",
            output_text(&run)
        );
        assert_eq!(
            pgbench_figure(&text, "number of failed transactions"),
            Some(0),
            "-M {mode}\n{text}"
        );
        assert_eq!(
            pgbench_figure(&text, "number of transactions actually processed"),
            Some(800),
            "-M {mode}\n{text}"
        );
    }
    // The TPC-B script logs one history row per transaction (pgbench empties it before a run).
    assert_eq!(env.query("select count(*) from pgbench_history"), "800");
    env.assert_still_serving();
}
