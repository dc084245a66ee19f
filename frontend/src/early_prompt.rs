//! The prompt index.html shows before the wasm has arrived (frontend/boot.js runs it), so a
//! first visit is typeable as soon as the HTML and CSS are in. At start the app asks
//! boot.js for what was typed there, in which mode and whether it was already submitted
//! (boot.js removes the static page as it answers), renders its own prompt in its place
//! with the same values, sends a name submitted early at once, and has boot.js put the
//! focus and caret back, so typing goes on. boot.js does the DOM work: it knows that markup.

use wasm_bindgen::prelude::*;

use crate::name_prompt::Mode;

#[wasm_bindgen]
extern "C" {
    /// boot.js's `chatBootTake`: "mode\nsubmitted\nname\npassword" (text inputs hold no
    /// line breaks), or undefined without a static page. Absent from a page built from
    /// another index.html, hence `catch`.
    #[wasm_bindgen(catch, js_name = chatBootTake)]
    fn boot_take() -> Result<Option<String>, JsValue>;

    /// boot.js's `chatBootFocus`: the focus and caret back in the field of that id.
    #[wasm_bindgen(catch, js_name = chatBootFocus)]
    fn boot_focus() -> Result<(), JsValue>;
}

/// What the static prompt held when the app took over.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyPrompt {
    pub name: String,
    pub password: String,
    pub mode: Mode,
    /// The person pressed the button (or Enter) before the app was there.
    pub submitted: bool,
}

/// What the static prompt held; None without one. The static page is gone afterwards.
pub fn take() -> Option<EarlyPrompt> {
    parse(&boot_take().ok()??)
}

/// After the app's prompt is mounted: focus and caret where they were in the static one.
pub fn restore_focus() {
    let _ = boot_focus();
}

fn parse(held: &str) -> Option<EarlyPrompt> {
    let mut parts = held.splitn(4, '\n');
    let mode = match parts.next()? {
        "sign-in" => Mode::SignIn,
        "register" => Mode::Register,
        _ => Mode::Guest,
    };
    Some(EarlyPrompt {
        mode,
        submitted: parts.next()? == "1",
        name: parts.next()?.to_owned(),
        password: parts.next()?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_boot_js_hands_over() {
        assert_eq!(
            parse("register\n1\nann\npass word"),
            Some(EarlyPrompt {
                name: "ann".into(),
                password: "pass word".into(),
                mode: Mode::Register,
                submitted: true,
            })
        );
        let guest = parse("guest\n\n\n").unwrap();
        assert_eq!(
            (guest.mode, guest.submitted, guest.name.as_str()),
            (Mode::Guest, false, "")
        );
        assert_eq!(parse("guest\n1"), None, "a short answer is not trusted");
    }
}
