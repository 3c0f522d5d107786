//! Reading a child process's CPU time and peak memory from /proc (Linux).

use std::time::Duration;

/// CPU time of every thread of `pid` so far (user + system), from `/proc/<pid>/task/*/schedstat`
/// (nanosecond resolution; `/proc/<pid>/stat` only has 10 ms ticks).
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between read_dir and read: skip it.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(Duration::from_nanos(total))
}

/// User and system CPU time of `pid` so far, from `/proc/<pid>/stat` (clock ticks of 10 ms).
pub fn user_system(pid: u32) -> std::io::Result<(Duration, Duration)> {
    Ok(parse_user_system(&std::fs::read_to_string(format!(
        "/proc/{pid}/stat"
    ))?))
}

/// utime and stime of a `/proc/<pid>/stat` line.
fn parse_user_system(stat: &str) -> (Duration, Duration) {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name and state.
    let hz = 100; // USER_HZ on Linux
    (
        Duration::from_millis(tick(11) * 1000 / hz),
        Duration::from_millis(tick(12) * 1000 / hz),
    )
}

/// Current resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status_kib(&status, "VmRSS:"))
}

/// Peak resident set size of `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status_kib(&status, "VmHWM:"))
}

/// The KiB value of a `/proc/<pid>/status` line such as `VmRSS:   18432 kB`.
fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        // utime 250 ticks, stime 30 ticks (fields 14 and 15).
        let stat = "4242 (my (odd) fn) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0 99";
        assert_eq!(
            parse_user_system(stat),
            (Duration::from_millis(2500), Duration::from_millis(300))
        );
    }

    #[test]
    fn status_lines_give_kib() {
        let status = "Name:\tbootstrap\nVmHWM:\t   19044 kB\nVmRSS:\t   18432 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), 18432);
        assert_eq!(status_kib(status, "VmHWM:"), 19044);
        assert_eq!(status_kib(status, "VmSwap:"), 0);
    }

    #[test]
    fn cpu_time_grows_with_work_done() {
        let pid = std::process::id();
        let before = cpu_time(pid).unwrap();
        // Tens of milliseconds of CPU at least, in a debug or a release build.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let spent = cpu_time(pid).unwrap().saturating_sub(before);
        assert!(spent >= Duration::from_millis(5), "{spent:?} for {x}");
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(peak_rss_kib(pid).unwrap() >= rss_kib(pid).unwrap());
    }
}
