//! What shell words expand to.

use crate::policy::shell::words::{Arg, analyse, heredoc_substitutions};

fn opaque(dash_safe: bool, single: bool) -> Arg {
    Arg::Opaque { dash_safe, single }
}

#[test]
fn literals() {
    assert_eq!(analyse("ls").arg, Arg::Literal("ls".into()));
    assert_eq!(analyse("'r''m'").arg, Arg::Literal("rm".into()));
    assert_eq!(analyse("\"-i\"").arg, Arg::Literal("-i".into()));
    assert_eq!(analyse("\\-i").arg, Arg::Literal("-i".into()));
    assert_eq!(analyse("\"a b\"").arg, Arg::Literal("a b".into()));
    assert_eq!(analyse("'*.log'").arg, Arg::Literal("*.log".into()));
}

#[test]
fn opaque_words() {
    assert_eq!(analyse("*.log").arg, opaque(false, false));
    assert_eq!(analyse("./*.log").arg, opaque(true, false));
    assert_eq!(analyse("/var/log/*").arg, opaque(true, false));
    assert_eq!(analyse("{-i,x}").arg, opaque(false, false));
    assert_eq!(analyse("$X").arg, opaque(false, false));
    assert_eq!(analyse("./$X").arg, opaque(false, false), "word splitting");
    assert_eq!(analyse("\"./$X\"").arg, opaque(true, true));
    assert_eq!(analyse("~/x").arg, opaque(true, true));
    assert_eq!(analyse("$'\\x2d'i").arg, opaque(false, true));
}

#[test]
fn substitutions_are_found() {
    assert_eq!(
        analyse("$(rm -rf /)").substitutions,
        vec!["rm -rf /".to_string()]
    );
    assert_eq!(analyse("\"a$(id)b\"").substitutions, vec!["id".to_string()]);
    assert_eq!(analyse("`ls`").substitutions, vec!["ls".to_string()]);
    assert!(analyse("${x:-$(rm)}").opaque_reason.is_some());
    assert!(analyse("\"${HOME}$(id)\"").opaque_reason.is_some());
    assert_eq!(analyse("${HOME}/x").arg, opaque(false, false));
    assert!(analyse("${HOME}/x").opaque_reason.is_none());
    assert!(analyse("$((a[$(id)]))").opaque_reason.is_some());
    assert!(analyse("$((1+2))").opaque_reason.is_none());
    assert!(analyse("$((LC_A))").opaque_reason.is_some());
    assert!(analyse("'$((LC_A))'").opaque_reason.is_none());
    assert_eq!(analyse("\"${HOME}\"").arg, opaque(false, true));
    for evaluating in [
        "${a[x]}",
        "\"${a[$i]}\"",
        "${s:x}",
        "${s: n:1}",
        "${!x}",
        "${#a[x]}",
        "\"${TERM@P}\"",
        "$[x]",
        "${HOME}$((x))",
    ] {
        assert!(analyse(evaluating).opaque_reason.is_some(), "{evaluating}");
    }
    for plain in [
        "${a[@]}", "${a[1]}", "${s:1:2}", "${s:-x}", "${x@Q}", "${#x}", "${x:=1}",
    ] {
        assert!(analyse(plain).opaque_reason.is_none(), "{plain}");
    }
    let h = heredoc_substitutions("line $(rm -rf /)\n");
    assert_eq!(h.substitutions, vec!["rm -rf /".to_string()]);
}
