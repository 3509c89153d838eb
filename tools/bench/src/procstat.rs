//! CPU time and memory of a process, read from `/proc/<pid>/stat` and `/proc/<pid>/status`,
//! plus a background sampler that keeps the peak and a time series of RSS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

/// `USER_HZ`: the unit of `utime`/`stime` in `/proc/<pid>/stat`. The kernel fixes it at 100
/// on every architecture Linux exports to user space, whatever `CONFIG_HZ` is.
const USER_HZ: f64 = 100.0;

/// One reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size since start (`VmHWM`), KiB.
    pub hwm_kib: u64,
}

/// Reads the current CPU time and RSS of `pid`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    let (_, cpu_secs) = parse_stat(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        cpu_secs,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// The command name and user + system CPU seconds in a `/proc/<pid>/stat` (or
/// `/proc/<pid>/task/<tid>/stat`) line.
fn parse_stat(stat: &str) -> anyhow::Result<(&str, f64)> {
    // The command name (field 2) is in parentheses and may contain spaces and ')'; the
    // fields after its last ')' are plain.
    let (head, rest) = stat.rsplit_once(')').context("malformed /proc/<pid>/stat")?;
    let name = head
        .split_once('(')
        .map(|(_, n)| n)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc/<pid>/stat")?.parse::<u64>()? as f64)
    };
    Ok((name, (ticks(11)? + ticks(12)?) / USER_HZ))
}

/// CPU seconds a local PostgreSQL server has used since it started, all its processes
/// together: the postmaster's own and its reaped children's (`cutime`, `cstime`: every
/// backend that has ended, Herald's included once they close), plus every live child's.
/// The difference between two readings is the server's CPU in between, whatever
/// connected and left meanwhile — also other databases' sessions and autovacuum, so it is
/// a reading of a quiet server. Why: on one machine PostgreSQL's CPU per delivery is as
/// much Herald's cost as Herald's own (`fanout-pg` spends more of it there than in
/// Herald), and deliveries/s alone cannot tell a cheaper engine from a faster minute.
/// `None` when `postmaster` is not a process here.
pub fn server_cpu_secs(postmaster: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{postmaster}/stat")).ok()?;
    let (_, own, reaped) = parse_stat_with_children(&stat).ok()?;
    let mut total = own + reaped;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        // A child that ends between the two reads is left out of this reading (its CPU
        // moves into the postmaster's `cutime` for the next).
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Ok((ppid, cpu, _)) = parse_stat_with_children(&stat) {
            if ppid == postmaster {
                total += cpu;
            }
        }
    }
    Some(total)
}

/// The parent pid, the process's own user + system CPU seconds and its reaped children's
/// (`cutime` + `cstime`) in a `/proc/<pid>/stat` line.
fn parse_stat_with_children(stat: &str) -> anyhow::Result<(u32, f64, f64)> {
    let (_, rest) = stat.rsplit_once(')').context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After ')': ppid (field 4) is index 1; utime, stime, cutime, cstime (14–17) are 11–14.
    let field = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc/<pid>/stat")?.parse::<u64>()?)
    };
    let ppid = u32::try_from(field(1)?)?;
    let own = (field(11)? + field(12)?) as f64 / USER_HZ;
    let reaped = (field(13)? + field(14)?) as f64 / USER_HZ;
    Ok((ppid, own, reaped))
}

/// CPU seconds of each of `pid`'s threads, by thread id, with the thread's group: its
/// name with a trailing number dropped, so that a pool's threads add up (`herald-db-3` →
/// `herald-db`). Why: the process total says how much CPU Herald used, not whether one
/// thread set the pace; SQLite's change path runs on two named threads (`herald-writer`,
/// `herald-writedb`), and one of them busy the whole window is the sign that it, not the
/// machine, was the limit. Kept per thread so that a difference between two readings is
/// right when threads come and go (blocking-pool and connection threads do). Threads
/// that end while being read, or whose line cannot be read, are left out.
pub fn thread_cpu(pid: u32) -> anyhow::Result<HashMap<u32, (String, f64)>> {
    let mut out = HashMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("cannot list /proc/{pid}/task"))?;
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Ok((name, secs)) = parse_stat(&stat) else {
            continue;
        };
        out.insert(tid, (thread_group(name).to_owned(), secs));
    }
    Ok(out)
}

/// A thread's name without a trailing number (and the `-` before it).
fn thread_group(name: &str) -> &str {
    let group = name.trim_end_matches(|c: char| c.is_ascii_digit());
    match group.strip_suffix('-') {
        Some(g) if !g.is_empty() => g,
        _ if group.is_empty() => name,
        _ => group,
    }
}

/// RSS readings taken every `every` until stopped: `(unix_ns, rss_kib)`.
#[derive(Clone, Default)]
pub struct RssSeries(Arc<Mutex<Vec<(u64, u64)>>>);

impl RssSeries {
    /// All readings.
    pub fn points(&self) -> Vec<(u64, u64)> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Samples `pid`'s RSS until `stop` is cancelled or the process is gone.
pub fn watch_rss(pid: u32, every: Duration, stop: CancellationToken) -> RssSeries {
    let series = RssSeries::default();
    let out = series.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(s) = sample(pid) else { return };
            if let Ok(mut v) = series.0.lock() {
                v.push((crate::record::now_ns(), s.rss_kib));
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    /// A server's CPU counts its children's, live or ended: a child that burns CPU and is
    /// waited for moves it into its parent's reading.
    #[test]
    fn server_cpu_counts_children_that_ended() {
        let me = std::process::id();
        let before = super::server_cpu_secs(me).expect("own /proc entry");
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let after = super::server_cpu_secs(me).expect("own /proc entry");
        let own = super::sample(me).unwrap().cpu_secs;
        assert!(after - before >= 0.05, "{before} → {after}");
        assert!(after >= own, "the reading includes the process's own CPU");
        let line = "42 (postgres: x) S 7 42 42 0 -1 4194560 1 2 3 4 150 50 1000 300 20 0 1 0";
        assert_eq!(super::parse_stat_with_children(line).unwrap(), (7, 2.0, 13.0));
    }

    #[test]
    fn reads_our_own_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
        assert!(s.cpu_secs >= 0.0);
    }

    #[test]
    fn a_pools_threads_share_one_group() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spin = |n: usize| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("probe-pool-{n}"))
                .spawn(move || {
                    // Busy until told to stop, so each thread has CPU time to count.
                    let t0 = std::time::Instant::now();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::black_box(t0.elapsed());
                    }
                })
                .unwrap()
        };
        let threads = [spin(1), spin(12)];
        let pid = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let pool = loop {
            let pool: Vec<f64> = super::thread_cpu(pid)
                .expect("own /proc/<pid>/task")
                .into_values()
                .filter(|(group, _)| group == "probe-pool")
                .map(|(_, secs)| secs)
                .collect();
            if pool.iter().sum::<f64>() > 0.0 || std::time::Instant::now() > deadline {
                break pool;
            }
            std::thread::yield_now();
        };
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.len(), 2, "both threads, under one group");
        assert!(pool.iter().sum::<f64>() > 0.0, "{pool:?}");
    }

    #[test]
    fn a_trailing_number_is_dropped_from_a_group_name() {
        assert_eq!(super::thread_group("herald-db-3"), "herald-db");
        assert_eq!(super::thread_group("tokio-rt-worker"), "tokio-rt-worker");
        assert_eq!(super::thread_group("worker7"), "worker");
        assert_eq!(super::thread_group("42"), "42");
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_is_read_whole() {
        let line = "42 (a (b) c) R 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1 1 1";
        let (name, secs) = super::parse_stat(line).unwrap();
        assert_eq!(name, "a (b) c");
        assert!((secs - 3.0).abs() < 1e-9, "{secs}");
    }
}
