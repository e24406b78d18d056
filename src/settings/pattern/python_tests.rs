//! Unit tests of the Python-to-fancy-regex translation.

use super::*;

fn plain(p: &str) -> String {
    translate(p).unwrap().plain
}

fn refused(p: &str) -> String {
    match translate(p).unwrap_err() {
        Refusal::Invalid { message, position } => format!("{message} at position {position}"),
        Refusal::Unsupported(what) => format!("unsupported: {what}"),
    }
}

#[test]
fn plain_patterns_pass_through() {
    for p in [
        "^web_",
        "tmp$",
        "a|b",
        "(a)(?:b)",
        r"\d+\w*\s?",
        "[a-z0-9_]+",
        "x{2,3}?",
    ] {
        assert_eq!(plain(p), p);
    }
    assert_eq!(translate("^web").unwrap().trailing_newline, None);
}

#[test]
fn look_around_atomic_possessive_conditional_pass_through() {
    for p in [
        "^(?!web_|worker_)",
        "(?<=x)y(?=z)",
        "(?<!a)b",
        "(?>ab|a)c",
        "a*+b",
        "a{2,}+",
    ] {
        assert_eq!(plain(p), p);
    }
}

#[test]
fn end_anchors_follow_python() {
    assert_eq!(plain(r"a\Z"), r"a\z");
    let t = translate("a$").unwrap();
    assert_eq!(t.plain, "a$");
    assert_eq!(t.trailing_newline.as_deref(), Some(r"a(?=\n?\z)"));
    assert_eq!(translate("(?m)a$").unwrap().trailing_newline, None);
    assert_eq!(
        translate("(?m:a$)b$").unwrap().trailing_newline.as_deref(),
        Some(r"(?m:a$)b(?=\n?\z)")
    );
}

#[test]
fn names_become_numbers() {
    assert_eq!(plain(r"(?P<x>a)(?P=x)"), r"(a)\k<1>");
    assert_eq!(plain(r"(a)(?P<y>b)\2\1"), r"(a)(b)\k<2>\k<1>");
    assert_eq!(plain(r"(?P<y>b)?(?(y)c|d)"), r"(b)?(?(1)c|d(?=))");
    assert_eq!(plain(r"(b)?(?(1))"), r"(b)?(?(1)|(?=))");
    // Two digits at most are a reference; `\1` then a literal `0` would read as `\10`.
    let ten = "(a)".repeat(10);
    assert_eq!(plain(&format!(r"{ten}\109")), format!(r"{ten}\k<10>9"));
    // Three octal digits are a character, as in Python.
    assert_eq!(plain(&format!(r"{ten}\100")), format!("{ten}@"));
}

#[test]
fn comments_and_verbose_mode_are_dropped() {
    assert_eq!(plain("a(?#note (with \\) paren)b"), "ab");
    assert_eq!(plain("a(?#x)*"), "a*");
    assert_eq!(plain("(?x) a b # comment\n [ ] c"), r"ab[ ]c");
    assert_eq!(plain("(?x:a b)c d"), "(?:ab)c d");
    assert_eq!(plain(r"(?x)a\ b"), "a b");
    assert_eq!(plain("(?xi)a"), "(?i)a");
    assert_eq!(plain("(?i-s:a)"), "(?i-s:a)");
}

#[test]
fn escapes_become_characters() {
    assert_eq!(
        plain(r"\x41\u00e9\U0001F600\101\0\n"),
        "A\u{e9}\u{1F600}A\0\n"
    );
    assert_eq!(plain(r"[\b\1\x2d]"), "[\u{8}\u{1}\\-]");
    assert_eq!(plain(r"\<\>\-\&\%"), "<>-&%");
}

#[test]
fn literal_syntax_is_escaped() {
    assert_eq!(plain("[[:alpha:]]"), r"[\[:alpha:]\]");
    assert_eq!(plain("[a&&b~~d]"), r"[a\&\&b\~\~d]");
    assert_eq!(plain("[--/]"), r"[\--/]");
    assert_eq!(plain("[]a]"), r"[\]a]");
    assert_eq!(plain("[^]]"), r"[^\]]");
    assert_eq!(plain("[a-]"), r"[a\-]");
    assert_eq!(plain("[-a]"), r"[\-a]");
    assert_eq!(plain("[a-c-e]"), r"[a-c\-e]");
    assert_eq!(plain("a{b}c{}"), r"a\{b\}c\{\}");
    assert_eq!(plain("a{1, 2}"), r"a\{1, 2\}");
    assert_eq!(plain("x{,3}y{,}z{2}"), "x{0,3}y{0,}z{2}");
    assert_eq!(plain("a]b}"), r"a\]b\}");
}

#[test]
fn repeated_zero_width_items_become_what_they_amount_to() {
    assert_eq!(plain("x(?=a)*b"), "x(?:(?=a)|)b");
    assert_eq!(plain("x(?=a)*?b"), "x(?:|(?=a))b");
    assert_eq!(plain("x(?=a)?+b"), "x(?>(?=a)|)b");
    assert_eq!(plain("x(?<!a){2}b"), "x(?<!a)b");
    assert_eq!(plain("x(?:)*b"), "x(?:)b");
    assert_eq!(plain("x(?:(?i:(?=a)))*b"), "x(?:(?:(?i:(?=a)))|)b");
    assert_eq!(plain("x(?:(?=a)c)*b"), "x(?:(?=a)c)*b");
    assert_eq!(plain("x(?:(?=a)+)?b"), "x(?:(?:(?=a))|)b");
    assert_eq!(refused("(?=a)+*"), "multiple repeat at position 6");
    let t = translate("a$(?=(b))*").unwrap();
    assert_eq!(t.plain, "a$(?:(?=(b))|)");
    assert_eq!(
        t.trailing_newline.as_deref(),
        Some(r"a(?=\n?\z)(?:(?=(b))|)")
    );
    assert_eq!(refused("(?=a)**"), "multiple repeat at position 6");
}

#[test]
fn python_errors_are_pythons() {
    assert_eq!(refused("a**"), "multiple repeat at position 2");
    assert_eq!(refused("*a"), "nothing to repeat at position 0");
    assert_eq!(refused("^*"), "nothing to repeat at position 1");
    assert_eq!(refused(r"\q"), r"bad escape \q at position 0");
    assert_eq!(
        refused(r"(a\1)"),
        "cannot refer to an open group at position 2"
    );
    assert_eq!(refused(r"\2(a)"), "invalid group reference 2 at position 1");
    assert_eq!(refused("(?P=n)"), "unknown group name 'n' at position 4");
    assert_eq!(
        refused("(?P<1>a)"),
        "bad character in group name '1' at position 4"
    );
    assert_eq!(
        refused("a(?i)"),
        "global flags not at the start of the expression at position 1"
    );
    assert_eq!(refused("(?<n>a)"), "unknown extension ?<n at position 1");
    assert_eq!(
        refused("((a)"),
        "missing ), unterminated subpattern at position 0"
    );
    assert_eq!(refused("a)"), "unbalanced parenthesis at position 1");
    assert_eq!(refused("[a"), "unterminated character set at position 0");
    assert_eq!(refused("[z-a]"), "bad character range z-a at position 1");
    assert_eq!(
        refused(r"[\d-z]"),
        r"bad character range \d-z at position 1"
    );
    assert_eq!(
        refused("a{3,2}"),
        "min repeat greater than max repeat at position 2"
    );
    assert_eq!(
        refused("(?L)a"),
        "bad inline flags: cannot use 'L' flag with a str pattern at position 3"
    );
    assert_eq!(refused(r"\x4"), r"incomplete escape \x4 at position 0");
    assert_eq!(
        refused("(?(1)a|b|c)(x)"),
        "conditional backref with more than two branches at position 8"
    );
    assert_eq!(
        refused("(?(2)a)(x)"),
        "invalid group reference 2 at position 3"
    );
    assert_eq!(refused(r"\e"), r"bad escape \e at position 0");
    assert_eq!(
        refused("[a&&b--c]"),
        "bad character range b-- at position 4"
    );
    assert_eq!(
        refused("(?P<a>x(?P=a))"),
        "cannot refer to an open group at position 11"
    );
    assert_eq!(
        refused("(?P<a>x)(?P<a>y)"),
        "redefinition of group name 'a' as group 2; was group 1 at position 12"
    );
    assert_eq!(refused("(?i"), "missing -, : or ) at position 3");
    assert_eq!(refused("(?-i)"), "missing : at position 4");
    assert_eq!(
        refused("(?i-i:a)"),
        "bad inline flags: flag turned on and off at position 5"
    );
    assert_eq!(
        refused("(?-u:a)"),
        "bad inline flags: cannot turn off flags 'a', 'u' and 'L' at position 4"
    );
    assert_eq!(refused("(?P"), "unexpected end of pattern at position 3");
    assert_eq!(refused("(?(0)a)"), "bad group number at position 3");
    assert_eq!(refused("(?(a)b)"), "unknown group name 'a' at position 3");
    assert_eq!(
        refused(r"\477"),
        r"octal escape value \477 outside of range 0-0o377 at position 0"
    );
    assert_eq!(refused(r"[\8]"), r"bad escape \8 at position 1");
}

#[test]
fn what_cannot_be_matched_is_named() {
    assert_eq!(refused("(?a)web"), "unsupported: the ASCII-only flag (?a)");
    assert_eq!(
        refused(r"\N{DIGIT ONE}"),
        r"unsupported: named characters (\N{...})"
    );
    assert_eq!(
        refused(r"\ud800"),
        r"unsupported: the surrogate \ud800 (it never occurs in a valid name)"
    );
}
