//! CPU time and memory of a process, read from `/proc/<pid>/stat` and `/proc/<pid>/status`,
//! plus a background sampler that keeps the peak and a time series of RSS.

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
    // The command name (field 2) may contain spaces; fields after its ')' are plain.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short /proc/<pid>/stat")?.parse::<u64>()? as f64)
    };
    let cpu_secs = (ticks(11)? + ticks(12)?) / USER_HZ;
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
    #[test]
    fn reads_our_own_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
        assert!(s.cpu_secs >= 0.0);
    }
}
