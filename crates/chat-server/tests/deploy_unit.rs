//! deploy/chat-server.service as systemd reads it: `systemd-analyze verify` finds no error
//! and no warning (an unknown or misspelt key is only a warning to systemd, so a sandboxing
//! line could silently do nothing). Machines without systemd skip it, saying so.
use std::{path::Path, process::Command};

const UNIT: &str = include_str!("../../../deploy/chat-server.service");
/// Where the unit expects the release binary; verify checks that it is executable.
const INSTALLED_BIN: &str = "/usr/local/bin/chat-server";

#[test]
fn systemd_accepts_the_unit_without_a_warning() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed, deploy/chat-server.service is not verified"
        );
        return;
    }
    assert!(
        UNIT.contains(INSTALLED_BIN),
        "the unit no longer runs {INSTALLED_BIN}"
    );
    // The binary under test stands in for the installed one: the only change.
    let unit = UNIT.replace(INSTALLED_BIN, env!("CARGO_BIN_EXE_chat-server"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat-server.service");
    std::fs::write(&path, unit).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {}:\n{said}",
        path.display()
    );
}

#[test]
fn the_unit_starts_the_server_with_flags_it_accepts() {
    // Every ExecStart flag parsed by the real binary: `--help` after them would stop
    // parsing early, so the flags are checked by asking for the version with them.
    let exec = UNIT
        .split("ExecStart=")
        .nth(1)
        .expect("an ExecStart line")
        .split("\n\n")
        .next()
        .unwrap();
    let exec: String = exec
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .map(|l| l.trim_end_matches('\\'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some(INSTALLED_BIN));
    let args: Vec<&str> = words.collect();
    assert!(!args.is_empty());
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(&args)
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chat-server {args:?} --version: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(INSTALLED_BIN).is_absolute());
}
