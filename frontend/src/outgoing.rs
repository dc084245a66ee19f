//! The message the composer is posting, and the random id that makes posting it
//! idempotent (`MessageRequest.client_msg_id`): the server answers a repeat of the same id
//! with the message it already stored, so a retry after an answer was lost (the server
//! unreachable, a re-join) never posts twice. The id lives until the server has accepted
//! the message; sending the same text to the same room again before that reuses it.

/// The message not yet accepted: (room, text, id).
#[derive(Default)]
pub struct Outgoing {
    pending: Option<(String, String, String)>,
}

impl Outgoing {
    /// The id for posting `text` to `room`: the pending one when this is a retry of it,
    /// else a `fresh` one, which becomes the pending message.
    pub fn id_for(&mut self, room: &str, text: &str, fresh: impl FnOnce() -> String) -> String {
        match &self.pending {
            Some((r, t, id)) if r == room && t == text => id.clone(),
            _ => {
                let id = fresh();
                self.pending = Some((room.to_owned(), text.to_owned(), id.clone()));
                id
            }
        }
    }

    /// The server accepted the message with `id`: the same text again is a new message.
    pub fn accepted(&mut self, id: &str) {
        if self.pending.as_ref().is_some_and(|(_, _, p)| p == id) {
            self.pending = None;
        }
    }
}

/// 128 random bits from the browser's CSPRNG (crypto.getRandomValues), as 32 hex digits:
/// ids of different messages never meet. Empty, meaning "no id", in the unlikely browser
/// without it: the message is then posted as before, without the retry guarantee.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    match filled {
        true => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        false => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::Outgoing;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id{n}")
        }
    }

    #[test]
    fn a_retry_of_the_same_message_keeps_its_id() {
        let (mut out, mut fresh) = (Outgoing::default(), ids());
        let first = out.id_for("general", "hi", &mut fresh);
        assert_eq!(out.id_for("general", "hi", &mut fresh), first);
    }

    #[test]
    fn other_text_or_room_is_another_message() {
        let (mut out, mut fresh) = (Outgoing::default(), ids());
        let first = out.id_for("general", "hi", &mut fresh);
        let edited = out.id_for("general", "hi!", &mut fresh);
        assert_ne!(edited, first);
        assert_ne!(out.id_for("random", "hi!", &mut fresh), edited);
    }

    #[test]
    fn once_accepted_the_same_text_is_a_new_message() {
        let (mut out, mut fresh) = (Outgoing::default(), ids());
        let first = out.id_for("general", "hi", &mut fresh);
        out.accepted(&first);
        assert_ne!(out.id_for("general", "hi", &mut fresh), first);
    }

    #[test]
    fn an_old_acceptance_leaves_the_pending_message_alone() {
        let (mut out, mut fresh) = (Outgoing::default(), ids());
        let first = out.id_for("general", "hi", &mut fresh);
        let second = out.id_for("general", "hello", &mut fresh);
        out.accepted(&first);
        assert_eq!(out.id_for("general", "hello", &mut fresh), second);
    }
}
