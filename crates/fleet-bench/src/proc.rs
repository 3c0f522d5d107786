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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
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
    Ok((
        Duration::from_millis(tick(11) * 1000 / hz),
        Duration::from_millis(tick(12) * 1000 / hz),
    ))
}

/// Current resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0))
}

/// Peak resident set size of `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_time(pid).unwrap() > Duration::ZERO);
        assert!(peak_rss_kib(pid).unwrap() > 100);
        assert!(rss_kib(pid).unwrap() > 100);
        let (user, _system) = user_system(pid).unwrap();
        assert!(user > Duration::ZERO || cpu_time(pid).unwrap() < Duration::from_millis(10));
    }
}
