//! Parse and Bind events held back, to be folded into the statement event of the Execute
//! that runs them.
//!
//! A driver's extended-protocol round trip is Parse (of the unnamed statement), Bind,
//! Describe, Execute, Sync. Recorded one for one, that is three events where one says it all:
//! the statement event at Execute carries the same text, and can carry the Bind's values as
//! its `params`. So the relay holds back two events, at most one of each:
//! - **Bind.** Its event waits until the next Execute. If that Execute runs the portal it
//!   bound, its values go into the statement event (`params`) and the Bind has no event of its
//!   own.
//! - **Parse of the unnamed statement.** Its event waits likewise, and is dropped when that
//!   Execute also runs a portal bound from the unnamed statement with the same text: the
//!   statement event records the text. A named statement's Parse is recorded at once (later
//!   Binds refer to its name).
//!
//! Invariant: the trail keeps the order of the client's messages. What is held back is
//! recorded on its own before the events of any later client message: the relay calls
//! [`Folded::take`] before anything but an Execute, a Describe, a Flush or a Bind (a Bind
//! records what is held if a Bind is), before the Gate decides an Execute that does not run
//! it, and when the session ends. (A result from the server, of an earlier statement, may be
//! recorded in between, as it may between any two client messages.) Nothing held back is
//! ever dropped except a Parse whose text the statement event carries.

use bytes::Bytes;

use super::tracker::Name;
use crate::audit::{EventKind, Text};

/// A Bind whose event is held back.
pub(super) struct HeldBind {
    portal: Name,
    portal_text: Text,
    statement_name: Text,
    params: Vec<Option<Bytes>>,
}

impl HeldBind {
    pub fn new(
        portal: Name,
        portal_text: Text,
        statement_name: Text,
        params: Vec<Option<Bytes>>,
    ) -> HeldBind {
        HeldBind {
            portal,
            portal_text,
            statement_name,
            params,
        }
    }

    /// The values it bound (for the statement event).
    pub fn params(&self) -> &[Option<Bytes>] {
        &self.params
    }

    fn event(self) -> EventKind {
        EventKind::Bind {
            portal: self.portal_text,
            statement_name: self.statement_name,
            params: self.params,
        }
    }
}

#[derive(Default)]
pub(super) struct Folded {
    /// The text of a Parse of the unnamed statement.
    parse: Option<Text>,
    bind: Option<HeldBind>,
}

impl Folded {
    /// Hold back a Parse of the unnamed statement (after [`Folded::take`] recorded what was
    /// held before it).
    pub fn parse(&mut self, text: Text) {
        self.parse = Some(text);
    }

    /// Hold back a Bind. A Bind already held is not run by the next Execute: it, and the
    /// Parse before it, are returned to be recorded first.
    pub fn bind(&mut self, bind: HeldBind) -> Vec<EventKind> {
        let earlier = match self.bind.is_some() {
            true => self.take().collect(),
            false => Vec::new(),
        };
        self.bind = Some(bind);
        earlier
    }

    /// For an Execute of `portal` whose statement event has `text`: the held Bind if it bound
    /// that portal (its values go into the statement event), and the held Parse is dropped if
    /// that Bind was of the unnamed statement with this text. What is not folded stays held;
    /// [`Folded::take`] records it before the statement.
    pub fn execute(&mut self, portal: &Name, text: &str) -> Option<HeldBind> {
        let bind = self.bind.take_if(|b| &b.portal == portal)?;
        if bind.statement_name.is_empty() && self.parse.as_ref().is_some_and(|p| p.as_str() == text)
        {
            self.parse = None;
        }
        Some(bind)
    }

    /// Everything held back, in the order the client sent it, to be recorded now.
    pub fn take(&mut self) -> impl Iterator<Item = EventKind> + use<> {
        let parse = self.parse.take().map(|text| EventKind::Parse {
            statement_name: Text::from_static(""),
            text,
        });
        parse
            .into_iter()
            .chain(self.bind.take().map(HeldBind::event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(portal: &str, statement: &str) -> HeldBind {
        HeldBind::new(
            Name::wire(portal.as_bytes()),
            Text::from(portal.to_string()),
            Text::from(statement.to_string()),
            vec![Some(Bytes::from_static(b"7"))],
        )
    }

    fn kinds(f: &mut Folded) -> Vec<&'static str> {
        f.take().map(|e| e.name()).collect()
    }

    #[test]
    fn parse_bind_execute_is_one_statement() {
        let mut f = Folded::default();
        f.parse(Text::from_static("SELECT $1"));
        assert!(f.bind(bind("", "")).is_empty());
        let b = f.execute(&Name::wire(b""), "SELECT $1").expect("folded");
        assert_eq!(b.params().len(), 1);
        assert!(kinds(&mut f).is_empty());
    }

    #[test]
    fn what_is_not_run_is_recorded_in_order() {
        let mut f = Folded::default();
        f.parse(Text::from_static("SELECT $1"));
        assert!(f.bind(bind("p1", "")).is_empty());
        // Another portal's Execute folds nothing.
        assert!(f.execute(&Name::wire(b"p2"), "SELECT $1").is_none());
        assert_eq!(kinds(&mut f), ["parse", "bind"]);
        // A second Bind records the Parse and the Bind before it, in order.
        f.parse(Text::from_static("SELECT $1"));
        assert!(f.bind(bind("p1", "")).is_empty());
        let earlier: Vec<_> = f.bind(bind("p2", "s")).iter().map(|e| e.name()).collect();
        assert_eq!(earlier, ["parse", "bind"]);
        // A Bind of a named statement folds, but the unnamed Parse is not its text.
        f.parse(Text::from_static("SELECT 2"));
        assert!(f.execute(&Name::wire(b"p2"), "SELECT $1").is_some());
        assert_eq!(kinds(&mut f), ["parse"]);
        // An Execute whose text differs (EXECUTE of a prepared statement) keeps the Parse.
        f.parse(Text::from_static("EXECUTE q"));
        assert!(f.bind(bind("", "")).is_empty());
        assert!(f.execute(&Name::wire(b""), "SELECT 1").is_some());
        assert_eq!(kinds(&mut f), ["parse"]);
    }
}
