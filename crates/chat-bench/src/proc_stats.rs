//! CPU time and memory of a process, read from Linux's /proc, so the report can say what
//! the server spent for the deliveries it made. Works for any pid the user may read,
//! which is why the bench takes the server's pid rather than starting the server itself.
use std::{fs, io};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User plus system CPU time so far, in seconds.
    pub cpu_s: f64,
    /// Resident set now, and its peak so far (VmHWM), in KiB.
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

/// Reads `/proc/{pid}`; `None` for this process.
pub fn sample(pid: Option<u32>) -> io::Result<ProcSample> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    };
    let stat = fs::read_to_string(format!("{dir}/stat"))?;
    let status = fs::read_to_string(format!("{dir}/status"))?;
    let ticks = cpu_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc stat"))?;
    // SAFETY: sysconf only reads a constant of the running system.
    let per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ProcSample {
        cpu_s: ticks as f64 / per_s,
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        peak_rss_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
    })
}

/// utime + stime: fields 14 and 15 of /proc/PID/stat. The command name (field 2) may hold
/// spaces and parentheses, so counting starts after its last ')'.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_an_awkward_name() {
        let stat = "1234 (chat (x) srv) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn parses_status_sizes() {
        let status = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = sample(None).unwrap();
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib);
    }
}
