//! A scanner for GNU sed scripts: finds the commands that write files (`w`, `W`, the `w`
//! flag of `s`) or run commands (`e`, the `e` flag of `s`).
//!
//! Invariant: `read` only when every command of the script was recognised and none of them
//! writes or executes; anything the scanner does not understand is `unknown`.

use crate::policy::Class;

/// The class of running `sed` with this script (without `-i`).
pub fn sed_script_class(script: &str) -> Class {
    let mut s = Scanner {
        c: script.chars().collect(),
        i: 0,
    };
    s.script().unwrap_or(Class::Unknown)
}

struct Scanner {
    c: Vec<char>,
    i: usize,
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }

    /// Skips to the end of the line (for text arguments, labels, file names).
    fn rest_of_line(&mut self) {
        while let Some(c) = self.next() {
            if c == '\n' {
                break;
            }
        }
    }

    /// Skips a label: up to `;` or end of line.
    fn label(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' || c == ';' {
                break;
            }
            self.i += 1;
        }
    }

    /// Skips a delimited part (regex or replacement), honouring backslash escapes.
    fn delimited(&mut self, delim: char) -> Option<()> {
        loop {
            match self.next()? {
                '\\' => {
                    self.next()?;
                }
                c if c == delim => return Some(()),
                '\n' => return None,
                _ => {}
            }
        }
    }

    fn address(&mut self) -> Option<()> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '~') {
                    self.i += 1;
                }
            }
            Some('$') => self.i += 1,
            Some('/') => {
                self.i += 1;
                self.delimited('/')?;
                self.regex_flags();
            }
            Some('\\') => {
                self.i += 1;
                let d = self.next()?;
                self.delimited(d)?;
                self.regex_flags();
            }
            _ => {}
        }
        Some(())
    }

    fn regex_flags(&mut self) {
        while matches!(self.peek(), Some('I' | 'M')) {
            self.i += 1;
        }
    }

    fn script(&mut self) -> Option<Class> {
        let mut class = Class::Read;
        loop {
            while matches!(self.peek(), Some(' ' | '\t' | '\n' | ';')) {
                self.i += 1;
            }
            if self.peek().is_none() {
                return Some(class);
            }
            self.address()?;
            self.skip_blanks();
            if self.peek() == Some(',') {
                self.i += 1;
                self.skip_blanks();
                if matches!(self.peek(), Some('+' | '~')) {
                    self.i += 1;
                }
                self.address()?;
            }
            self.skip_blanks();
            while self.peek() == Some('!') {
                self.i += 1;
                self.skip_blanks();
            }
            match self.next()? {
                '{' | '}' | '=' | 'd' | 'D' | 'g' | 'G' | 'h' | 'H' | 'n' | 'N' | 'p' | 'P'
                | 'x' | 'z' | 'F' => {}
                'l' | 'q' | 'Q' | 'L' => {
                    self.skip_blanks();
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.i += 1;
                    }
                }
                '#' | 'a' | 'i' | 'c' | 'r' | 'R' => self.text_argument(),
                ':' | 'b' | 't' | 'T' | 'v' => self.label(),
                'w' | 'W' => {
                    class = class.max(Class::Write);
                    self.rest_of_line();
                }
                's' => class = class.max(self.substitute()?),
                'y' => {
                    let d = self.next()?;
                    if d == '\\' || d == '\n' {
                        return None;
                    }
                    self.delimited(d)?;
                    self.delimited(d)?;
                }
                // `e` runs a command; anything else is not understood.
                _ => return None,
            }
        }
    }

    /// `a text`, `i\` + newline + text, …: text up to an unescaped end of line.
    fn text_argument(&mut self) {
        while let Some(c) = self.next() {
            match c {
                '\\' => {
                    self.next();
                }
                '\n' => break,
                _ => {}
            }
        }
    }

    fn substitute(&mut self) -> Option<Class> {
        let d = self.next()?;
        if d == '\\' || d == '\n' {
            return None;
        }
        self.delimited(d)?;
        self.delimited(d)?;
        loop {
            match self.peek() {
                Some('g' | 'p' | 'i' | 'I' | 'm' | 'M') => self.i += 1,
                Some(c) if c.is_ascii_digit() => self.i += 1,
                Some('w') => {
                    self.rest_of_line();
                    return Some(Class::Write);
                }
                Some('e') => return None,
                Some(' ' | '\t' | ';' | '\n' | '}') | None => return Some(Class::Read),
                Some(_) => return None,
            }
        }
    }
}
