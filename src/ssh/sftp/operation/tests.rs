//! Each request type's class, statement and paths; truncated and garbage packets.

use super::*;

/// A packet: type, id, then `fields` (strings length-prefixed, numbers as given).
enum F<'a> {
    S(&'a [u8]),
    U32(u32),
    U64(u64),
}

fn packet(kind: u8, id: u32, fields: &[F]) -> Vec<u8> {
    let mut body = vec![kind];
    body.extend(id.to_be_bytes());
    for f in fields {
        match f {
            F::S(s) => {
                body.extend((s.len() as u32).to_be_bytes());
                body.extend(*s);
            }
            F::U32(n) => body.extend(n.to_be_bytes()),
            F::U64(n) => body.extend(n.to_be_bytes()),
        }
    }
    let mut p = (body.len() as u32).to_be_bytes().to_vec();
    p.extend(body);
    p
}

fn decided(p: &[u8]) -> Operation {
    match classify(p, &mut Handles::default()) {
        Ok(Ask::Decide(op)) => op,
        other => panic!("not decided: {other:?}"),
    }
}

fn class_and_statement(p: &[u8]) -> (Class, String) {
    let op = decided(p);
    (op.class, op.statement)
}

#[test]
fn every_request_that_names_a_path_is_decided_with_its_class() {
    use F::*;
    let at = |kind, path: &[u8]| packet(kind, 1, &[S(path)]);
    let open = |flags| packet(p::OPEN, 1, &[S(b"/etc/hosts"), U32(flags), U32(0)]);
    let cases: Vec<(Vec<u8>, Class, &str)> = vec![
        (open(0x1), Class::Read, "sftp open-read /etc/hosts"),
        (open(0x0), Class::Read, "sftp open-read /etc/hosts"),
        (open(0x2), Class::Write, "sftp open-write /etc/hosts"),
        (open(0x1 | 0x4), Class::Write, "sftp open-write /etc/hosts"),
        (open(0x8), Class::Write, "sftp open-write /etc/hosts"),
        (open(0x10), Class::Write, "sftp open-write /etc/hosts"),
        (open(0x20), Class::Write, "sftp open-write /etc/hosts"),
        (open(0x100), Class::Write, "sftp open-write /etc/hosts"),
        (at(p::STAT, b"/a"), Class::Read, "sftp stat /a"),
        (at(p::LSTAT, b"/a"), Class::Read, "sftp lstat /a"),
        (
            at(p::OPENDIR, b"/var/log/"),
            Class::Read,
            "sftp opendir /var/log",
        ),
        (at(p::REALPATH, b"."), Class::Read, "sftp realpath ."),
        (
            at(p::REALPATH, b"/a/.."),
            Class::Read,
            "sftp realpath /a/..",
        ),
        (at(p::READLINK, b"/l"), Class::Read, "sftp readlink /l"),
        (at(p::REMOVE, b"/a"), Class::Write, "sftp remove /a"),
        (at(p::MKDIR, b"/d"), Class::Write, "sftp mkdir /d"),
        (at(p::RMDIR, b"/d"), Class::Write, "sftp rmdir /d"),
        (
            packet(p::SETSTAT, 1, &[S(b"/a"), U32(0)]),
            Class::Write,
            "sftp setstat /a",
        ),
        (
            packet(p::RENAME, 1, &[S(b"/a"), S(b"/b")]),
            Class::Write,
            "sftp rename /a /b",
        ),
        (
            packet(p::SYMLINK, 1, &[S(b"/etc/shadow"), S(b"/tmp/l")]),
            Class::Write,
            "sftp symlink /etc/shadow /tmp/l",
        ),
        (
            packet(
                p::EXTENDED,
                1,
                &[S(b"posix-rename@openssh.com"), S(b"/a"), S(b"/b")],
            ),
            Class::Write,
            "sftp posix-rename@openssh.com /a /b",
        ),
        (
            packet(
                p::EXTENDED,
                1,
                &[S(b"hardlink@openssh.com"), S(b"/a"), S(b"/b")],
            ),
            Class::Write,
            "sftp hardlink@openssh.com /a /b",
        ),
        (
            packet(p::EXTENDED, 1, &[S(b"statvfs@openssh.com"), S(b"/")]),
            Class::Read,
            "sftp statvfs@openssh.com /",
        ),
        (
            packet(p::EXTENDED, 1, &[S(b"expand-path@openssh.com"), S(b"~/x")]),
            Class::Read,
            "sftp expand-path@openssh.com ~/x",
        ),
        (
            packet(p::EXTENDED, 1, &[S(b"home-directory"), S(b"root")]),
            Class::Read,
            "sftp home-directory ~root",
        ),
        (
            packet(
                p::EXTENDED,
                1,
                &[S(b"lsetstat@openssh.com"), S(b"/a"), U32(0)],
            ),
            Class::Write,
            "sftp lsetstat@openssh.com /a",
        ),
        (
            packet(p::EXTENDED, 1, &[S(b"fancy@example.com"), S(b"/a")]),
            Class::Unknown,
            "sftp fancy@example.com",
        ),
        (packet(77, 1, &[]), Class::Unknown, "sftp request-type-77"),
    ];
    for (p, class, statement) in cases {
        assert_eq!(
            class_and_statement(&p),
            (class, statement.to_string()),
            "{statement}"
        );
    }
}

#[test]
fn handle_requests_pass_and_fsetstat_is_a_write_on_the_opened_path() {
    use F::*;
    let mut h = Handles::default();
    let open = packet(p::OPEN, 5, &[S(b"/srv/f"), U32(1), U32(0)]);
    let Ok(Ask::Decide(op)) = classify(&open, &mut h) else {
        panic!("open is decided")
    };
    assert_eq!(op.opens.as_deref(), Some("/srv/f"));
    h.expect(op.id, "/srv/f".into());
    // The target's SSH_FXP_HANDLE for request 5.
    let mut reply = vec![p::HANDLE];
    reply.extend(5u32.to_be_bytes());
    reply.extend(2u32.to_be_bytes());
    reply.extend(b"h1");
    let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
    framed.extend(reply);
    h.reply(&framed).expect("reply");
    for pass in [
        packet(p::READ, 6, &[S(b"h1"), U64(0), U32(4096)]),
        packet(p::WRITE, 7, &[S(b"h1"), U64(0), S(b"data")]),
        packet(p::FSTAT, 8, &[S(b"h1")]),
        packet(p::READDIR, 9, &[S(b"h1")]),
        packet(p::EXTENDED, 10, &[S(b"fsync@openssh.com"), S(b"h1")]),
        packet(p::EXTENDED, 11, &[S(b"limits@openssh.com")]),
    ] {
        assert_eq!(classify(&pass, &mut h), Ok(Ask::Pass));
    }
    let fsetstat = packet(p::FSETSTAT, 12, &[S(b"h1"), U32(0)]);
    let Ok(Ask::Decide(op)) = classify(&fsetstat, &mut h) else {
        panic!("fsetstat is decided")
    };
    assert_eq!(
        (op.class, op.statement.as_str()),
        (Class::Write, "sftp fsetstat /srv/f")
    );
    assert_eq!(
        classify(&packet(p::CLOSE, 13, &[S(b"h1")]), &mut h),
        Ok(Ask::Pass)
    );
    let Ok(Ask::Decide(op)) = classify(&fsetstat, &mut h) else {
        panic!("fsetstat is decided")
    };
    assert_eq!(op.statement, "sftp fsetstat <unknown-handle>");
    let copy = packet(
        p::EXTENDED,
        14,
        &[S(b"copy-data"), S(b"x"), U64(0), U64(0), S(b"y"), U64(0)],
    );
    assert_eq!(decided(&copy).class, Class::Write);
}

#[test]
fn paths_are_cut_at_nul_cleaned_and_dotdot_is_unknown() {
    use F::*;
    let stat = |path: &[u8]| decided(&packet(p::STAT, 1, &[S(path)]));
    let op = stat(b"/etc/shadow\0/../../var/log/a");
    assert_eq!(op.paths, ["/etc/shadow"]);
    assert_eq!(op.class, Class::Read);
    assert_eq!(stat(b"//var/./log//x/").paths, ["/var/log/x"]);
    assert_eq!(stat(b"./notes").paths, ["notes"]);
    assert_eq!(stat(b"").paths, ["."]);
    let up = stat(b"/var/log/../../etc/shadow");
    assert_eq!(up.class, Class::Unknown);
    assert_eq!(up.statement, "sftp stat /var/log/../../etc/shadow");
    assert_eq!(stat(b"/tmp/a b").statement, "sftp stat \"/tmp/a b\"");
    assert_eq!(stat(b"/tmp/\n").statement, "sftp stat \"/tmp/\\n\"");
}

#[test]
fn truncated_requests_and_garbage_are_errors_never_panics() {
    use F::*;
    let full = packet(p::RENAME, 1, &[S(b"/a"), S(b"/b")]);
    for cut in 4..full.len() {
        // A shorter packet (its length prefix fixed up) ends inside a field.
        let mut short = full[..cut].to_vec();
        short[..4].copy_from_slice(&((cut - 4) as u32).to_be_bytes());
        assert!(
            classify(&short, &mut Handles::default()).is_err(),
            "cut at {cut}"
        );
    }
    // Pseudo-random packets of every type: any answer but a panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = Handles::default();
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 40) as usize;
        let mut body: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
        if let Some(b) = body.first_mut() {
            *b = (x % 24) as u8 | if x & 1 == 0 { 0 } else { 200 };
        }
        let mut pkt = (body.len() as u32).to_be_bytes().to_vec();
        pkt.extend(&body);
        let _ = classify(&pkt, &mut h);
        let _ = h.reply(&pkt);
    }
}

#[test]
fn a_target_speaking_another_version_is_refused() {
    let version = |v: u32| {
        let mut p = 5u32.to_be_bytes().to_vec();
        p.push(p::VERSION);
        p.extend(v.to_be_bytes());
        p
    };
    let mut h = Handles::default();
    assert_eq!(h.reply(&version(3)), Ok(()));
    assert_eq!(h.reply(&version(6)), Err(PacketError::Version(6)));
}
