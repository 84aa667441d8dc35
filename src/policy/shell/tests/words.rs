//! What shell words expand to.

use crate::policy::shell::words::{Arg, analyse, heredoc_substitutions};

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
    assert_eq!(analyse("*.log").arg, Arg::Opaque { dash_safe: false });
    assert_eq!(analyse("./*.log").arg, Arg::Opaque { dash_safe: true });
    assert_eq!(analyse("/var/log/*").arg, Arg::Opaque { dash_safe: true });
    assert_eq!(analyse("{-i,x}").arg, Arg::Opaque { dash_safe: false });
    assert_eq!(analyse("$X").arg, Arg::Opaque { dash_safe: false });
    assert_eq!(
        analyse("./$X").arg,
        Arg::Opaque { dash_safe: false },
        "word splitting"
    );
    assert_eq!(analyse("\"./$X\"").arg, Arg::Opaque { dash_safe: true });
    assert_eq!(analyse("~/x").arg, Arg::Opaque { dash_safe: true });
    assert_eq!(analyse("$'\\x2d'i").arg, Arg::Opaque { dash_safe: false });
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
    assert_eq!(analyse("${HOME}/x").arg, Arg::Opaque { dash_safe: false });
    assert!(analyse("${HOME}/x").opaque_reason.is_none());
    assert!(analyse("$((a[$(id)]))").opaque_reason.is_some());
    assert!(analyse("$((1+2))").opaque_reason.is_none());
    let h = heredoc_substitutions("line $(rm -rf /)\n");
    assert_eq!(h.substitutions, vec!["rm -rf /".to_string()]);
}
