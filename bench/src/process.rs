//! Function binaries as Lambda runs them: a fresh process with the
//! environment Lambda sets (and nothing else), and its CPU time and peak
//! memory read from `/proc`.
//!
//! `/proc/<pid>/stat` gives the CPU time of all the process's threads in
//! clock ticks of `USER_HZ`, which Linux fixes at 100 per second for
//! user space on x86_64 and arm64; so a single reading is only good to
//! 10 ms, and per-invocation figures are averaged over many invocations.
//! `VmHWM` in `/proc/<pid>/status` is the peak resident set size, what
//! Lambda reports as "Max Memory Used".

use crate::error::BenchError;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Clock ticks per second in `/proc/<pid>/stat`.
pub const USER_HZ: u64 = 100;

/// A function binary and how it is deployed.
#[derive(Debug, Clone)]
pub struct LambdaFunction {
    /// The function name, as in `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    pub binary: PathBuf,
    /// `MemorySize` in template.yaml.
    pub memory_mb: u32,
    /// Variables set on top of Lambda's and the shared configuration: the
    /// function's own (its `Environment` in template.yaml), and a diagnostic
    /// variant's.
    pub extra_env: Vec<(String, String)>,
    /// What the variant is, for the report (`None` as deployed).
    pub variant: Option<String>,
}

impl LambdaFunction {
    pub fn new(name: &str, binary: PathBuf, memory_mb: u32) -> Self {
        Self {
            name: name.to_owned(),
            binary,
            memory_mb,
            extra_env: Vec::new(),
            variant: None,
        }
    }

    /// The function with `key=value` added to its environment: one of its
    /// own variables in template.yaml.
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.extra_env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A variant of the function, `described`, with `key=value` added to its
    /// environment.
    pub fn variant(&self, described: &str, key: &str, value: &str) -> Self {
        let mut variant = self.clone().with_env(key, value);
        variant.variant = Some(described.to_owned());
        variant
    }
}

/// The environment Lambda gives a `provided.al2023` function, plus the
/// configuration every function reads (the table and the queue) and the
/// function's own variables, with `aws_endpoint` as `AWS_ENDPOINT_URL`.
pub fn lambda_environment(
    function: &LambdaFunction,
    runtime_api: SocketAddr,
    aws_endpoint: &str,
) -> Vec<(String, String)> {
    let name = function.name.as_str();
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            function.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef".to_owned(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("AWS_REGION", crate::REGION.to_owned()),
        ("AWS_DEFAULT_REGION", crate::REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "ASIABENCHBENCHBENCH0".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "bench-secret".to_owned()),
        ("AWS_SESSION_TOKEN", "bench-session-token".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned()),
        ("JOBS_TABLE", "jobline-bench".to_owned()),
        (
            "JOBS_QUEUE_URL",
            format!("{aws_endpoint}/123456789012/jobline-bench"),
        ),
        ("AWS_ENDPOINT_URL", aws_endpoint.to_owned()),
        // The template's Globals: every function builds its S3 client when
        // a results bucket is configured, as deployed.
        ("RESULTS_BUCKET", "jobline-bench-results".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .chain(function.extra_env.iter().cloned())
    .collect()
}

/// A running function process; killed when dropped.
#[derive(Debug)]
pub struct LambdaProcess {
    child: Child,
}

/// CPU time and peak memory of a process so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessUsage {
    /// User plus system time of all threads, in clock ticks.
    pub cpu_ticks: u64,
    /// `VmHWM`: the peak resident set size, KiB.
    pub peak_rss_kib: u64,
}

impl ProcessUsage {
    /// CPU time since `earlier`, in milliseconds.
    pub fn cpu_ms_since(&self, earlier: &Self) -> f64 {
        self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 * 1000.0 / USER_HZ as f64
    }

    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

impl LambdaProcess {
    /// Starts `binary` with exactly `environment`, its stderr (log lines)
    /// appended to `log` and its stdout (EMF metric documents) to `log` with
    /// the extension `emf`: Lambda sends both to CloudWatch Logs, and the
    /// bench counts them apart.
    pub fn spawn(
        binary: &Path,
        environment: &[(String, String)],
        log: &Path,
    ) -> Result<Self, BenchError> {
        let append = |path: &Path| {
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(BenchError::io(format!("opening {}", path.display())))
        };
        let stderr = append(log)?;
        let stdout = append(&emf_log(log))?;
        let child = Command::new(binary)
            .env_clear()
            .envs(environment.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(BenchError::io(format!("starting {}", binary.display())))?;
        Ok(Self { child })
    }

    /// CPU time and peak memory so far.
    pub fn usage(&self) -> Result<ProcessUsage, BenchError> {
        usage_of(self.child.id())
    }
}

/// Where [`LambdaProcess::spawn`] appends the EMF documents of the process
/// whose log lines go to `log`.
pub fn emf_log(log: &Path) -> PathBuf {
    log.with_extension("emf")
}

/// CPU time and peak memory so far of the process `pid`.
pub fn usage_of(pid: u32) -> Result<ProcessUsage, BenchError> {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}"))
            .map_err(BenchError::io(format!("reading /proc/{pid}/{file}")))
    };
    let stat = read("stat")?;
    let status = read("status")?;
    Ok(ProcessUsage {
        cpu_ticks: cpu_ticks(&stat).ok_or_else(|| {
            BenchError::Unexpected(format!("unexpected /proc/{pid}/stat: {stat}"))
        })?,
        peak_rss_kib: status_kib(&status, "VmHWM")
            .ok_or_else(|| BenchError::Unexpected(format!("no VmHWM in /proc/{pid}/status")))?,
    })
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        // Already gone is fine: the point is that it is gone.
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from its closing parenthesis.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   1234 kB` value of `/proc/<pid>/status`, in KiB.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_add_user_and_system_time() {
        let stat = "4242 (jobline (api)) S 1 4242 4242 0 -1 4194560 1520 0 0 0 37 5 0 0 20 0 \
                    3 0 123456 12345678 2345 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(42));
        assert_eq!(cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn status_values_are_read_by_exact_key() {
        let status = "Name:\tbootstrap\nVmHWM:\t    9876 kB\nVmRSS:\t    5432 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(9876));
        assert_eq!(status_kib(status, "VmRSS"), Some(5432));
        assert_eq!(status_kib(status, "Vm"), None);
    }

    #[test]
    fn usage_of_this_process_is_readable() {
        let usage = usage_of(std::process::id()).unwrap();
        assert!(usage.peak_rss_kib > 0);
        let earlier = ProcessUsage {
            cpu_ticks: 10,
            peak_rss_kib: 2048,
        };
        let later = ProcessUsage {
            cpu_ticks: 35,
            peak_rss_kib: 4096,
        };
        assert_eq!(later.cpu_ms_since(&earlier), 250.0);
        assert_eq!(later.peak_rss_mib(), 4.0);
    }
}
