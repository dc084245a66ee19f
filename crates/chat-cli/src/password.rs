//! Where the password comes from: `--password-file`, else `CHAT_PASSWORD`, else (when
//! `--sign-in` or `--register` asks for one) a prompt on the terminal with echo off. It is
//! never printed or logged, and not taken as a plain flag, which every user of the machine
//! could read in the process list.
use std::{fs, path::Path};

/// The environment variable a password may come from.
pub const ENV: &str = "CHAT_PASSWORD";

/// The password, if one was given or asked for. `confirm` asks twice at the prompt (for
/// a new password), so a typo does not become the account's password.
pub fn find(
    file: Option<&Path>,
    prompt_for: Option<&str>,
    confirm: bool,
) -> Result<Option<String>, String> {
    if let Some(file) = file {
        let text = fs::read_to_string(file)
            .map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
        return non_empty(
            strip_newline(&text).to_owned(),
            "the password file is empty",
        )
        .map(Some);
    }
    if let Some(value) = std::env::var_os(ENV) {
        let value = value
            .into_string()
            .map_err(|_| format!("{ENV} is not valid UTF-8"))?;
        return non_empty(value, &format!("{ENV} is empty")).map(Some);
    }
    let Some(name) = prompt_for else {
        return Ok(None);
    };
    let asked = rpassword::prompt_password(format!("Password for {name}: "))
        .map_err(|e| format!("cannot read a password from the terminal: {e}"))?;
    if confirm {
        let again = rpassword::prompt_password("Repeat it: ")
            .map_err(|e| format!("cannot read a password from the terminal: {e}"))?;
        if again != asked {
            return Err("the two passwords differ".into());
        }
    }
    non_empty(asked, "no password given").map(Some)
}

/// A file written by an editor or `echo` ends in a newline that is not part of it.
fn strip_newline(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

fn non_empty(password: String, why: &str) -> Result<String, String> {
    match password.is_empty() {
        true => Err(why.to_owned()),
        false => Ok(password),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_dropped_and_nothing_else() {
        assert_eq!(strip_newline("secret\n"), "secret");
        assert_eq!(strip_newline("secret\r\n"), "secret");
        assert_eq!(strip_newline(" secret \n\n"), " secret \n");
        assert_eq!(strip_newline("secret"), "secret");
    }
}
