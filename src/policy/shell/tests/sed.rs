//! The `sed` script scanner.

use crate::policy::Class;
use crate::policy::shell::sed::sed_script_class;

#[test]
fn scripts() {
    for (script, want) in [
        ("s/foo/bar/", Class::Read),
        ("s/hello/world/g", Class::Read),
        ("-n", Class::Unknown),
        ("1,5p", Class::Read),
        ("/^#/d", Class::Read),
        ("$!N;P;D", Class::Read),
        ("s|a|b|2p", Class::Read),
        ("s/a/b/w /tmp/out", Class::Write),
        ("w /etc/passwd", Class::Write),
        ("1W out", Class::Write),
        ("s/x/id/e", Class::Unknown),
        ("e rm -rf /", Class::Unknown),
        ("1e id", Class::Unknown),
        ("y/abc/xyz/", Class::Read),
        ("/start/,/end/{s/a/b/;p}", Class::Read),
        ("a hello w world", Class::Read),
        ("1i\\\nheader", Class::Read),
        ("r /etc/hosts", Class::Read),
        (":a;N;$!ba;s/\\n/ /g", Class::Read),
        ("\\,x,d", Class::Read),
        ("0~2d", Class::Read),
        ("s/a/b", Class::Unknown),
        ("k", Class::Unknown),
        ("/x/I,+3 p", Class::Read),
        ("s/a/\\//;w f", Class::Write),
    ] {
        assert_eq!(sed_script_class(script), want, "{script:?}");
    }
}
