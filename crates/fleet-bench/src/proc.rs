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
    }
}
