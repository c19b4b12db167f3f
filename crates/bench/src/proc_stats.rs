//! The process's own CPU time and resident memory, from `/proc` (Linux; `None` elsewhere).

/// Linux reports `/proc/*/stat` times in USER_HZ, which is 100 on every architecture it
/// supports (the kernel's own tick rate is hidden behind it).
const USER_HZ: f64 = 100.0;

/// User + system CPU time of the whole process (every thread), in seconds.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_seconds(&stat)
}

/// Resident set size, in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_rss_kib(&status)
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // `pid (comm) state …`: comm may hold spaces and parentheses, so split after the last
    // `)`; utime and stime are fields 14 and 15, i.e. the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(parse_rss_kib(status), Some(1234));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_size_and_a_cpu_time() {
        assert!(rss_kib().unwrap() > 0);
        assert!(cpu_seconds().unwrap() >= 0.0);
    }
}
