//! The getopt_long model on its own: clusters, attached and separate values, abbreviated
//! long options, `--`, permutation.

use crate::policy::Class;
use crate::policy::shell::options::{Spec, Value, flag, optional, parse, value};
use crate::policy::shell::words::{Arg, analyse};

static SPEC: Spec = Spec::gnu(&[
    flag('a', "all"),
    flag('\0', "allow"),
    value('o', "output").is(Class::Write),
    value('k', "key"),
    optional('i', "in-place").is(Class::Write),
    flag('\0', "user"),
    value('\0', "user-unit"),
]);

fn args(words: &[&str]) -> Vec<Arg> {
    words.iter().map(|w| analyse(w).arg).collect()
}

fn class(words: &[&str]) -> Result<Class, String> {
    parse("p", &SPEC, &args(words)).map(|p| p.class)
}

#[test]
fn clusters_and_values() {
    assert_eq!(class(&["-a"]), Ok(Class::Read));
    assert_eq!(class(&["-ao", "x"]), Ok(Class::Write));
    assert_eq!(class(&["-aox"]), Ok(Class::Write));
    assert_eq!(class(&["-ko"]), Ok(Class::Read), "-k takes o as its value");
    assert_eq!(
        class(&["-k", "-o"]),
        Ok(Class::Read),
        "-k takes -o as its value"
    );
    assert_eq!(class(&["-ai"]), Ok(Class::Write));
    assert!(class(&["-k"]).is_err(), "a missing value");
    assert!(class(&["-q"]).is_err(), "not in the allow-list");
    let a = args(&["-i.bak", "file"]);
    let p = parse("p", &SPEC, &a).expect("parses");
    assert_eq!(
        p.values("i").collect::<Vec<_>>(),
        vec![Some(Value::Literal(".bak"))]
    );
    assert_eq!(p.operands.len(), 1);
}

#[test]
fn long_options_abbreviate_as_getopt_long_does() {
    assert_eq!(class(&["--out=x"]), Ok(Class::Write));
    assert_eq!(class(&["--o", "x"]), Ok(Class::Write));
    assert_eq!(class(&["--in"]), Ok(Class::Write));
    assert!(class(&["--al"]).is_err(), "ambiguous: all, allow");
    assert_eq!(class(&["--all"]), Ok(Class::Read), "an exact match wins");
    assert_eq!(
        class(&["--user"]),
        Ok(Class::Read),
        "exact, beside user-unit"
    );
    assert_eq!(class(&["--user-", "x"]), Ok(Class::Read));
    assert!(class(&["--all=x"]).is_err(), "a flag given a value");
    assert!(class(&["--nope"]).is_err());
    assert_eq!(
        class(&["--in-place", "x"]),
        Ok(Class::Write),
        "optional: x is an operand"
    );
}

#[test]
fn end_of_options_and_permutation() {
    assert_eq!(
        class(&["file", "-o", "x"]),
        Ok(Class::Write),
        "GNU permutation"
    );
    assert_eq!(class(&["--", "-o", "x"]), Ok(Class::Read));
    assert_eq!(class(&["-", "-a"]), Ok(Class::Read));
    static POSIX: Spec = Spec::posix(&[flag('a', ""), value('o', "").is(Class::Write)]);
    let a = args(&["-a", "cmd", "-o", "x"]);
    let p = parse("p", &POSIX, &a).expect("parses");
    assert_eq!(p.class, Class::Read);
    assert_eq!(p.first_operand, 1);
    assert!(class(&["$X"]).is_err(), "may be an option");
    assert_eq!(class(&["./$X"]).map_err(|_| ()), Err(()), "./$X splits");
    assert_eq!(class(&["\"./$X\""]), Ok(Class::Read));
}
