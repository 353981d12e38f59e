//! `jobline-local serve` as a child process on a test's table and queue,
//! for the process tests (`local/tests/`: SIGTERM, SIGKILL, hostile
//! connections, long jobs, webhooks). They live in `jobline-local`'s own
//! tests because only a package's tests are handed its binary's path
//! (`CARGO_BIN_EXE_jobline-local`), which they pass to [`Runner::start`].

use crate::TestEnv;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

/// A running `jobline-local serve`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Runner {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// Collects the lines of stdout after the banner (EMF metrics).
    metrics: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// How a [`Runner`] ended after SIGTERM.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// What it wrote to stdout after the banner: EMF metrics, a line for
    /// each batch and request.
    pub metrics: Vec<String>,
}

impl Runner {
    /// Starts `binary` (a `jobline-local`) as `serve --port 0 ARGS` on `env`'s resources with
    /// `vars` set, and waits for its banner. With `max_open_files`, the
    /// process runs under that soft limit of open files (`ulimit -n`).
    pub fn start(
        binary: &str,
        env: &TestEnv,
        args: &[&str],
        vars: &[(&str, &str)],
        max_open_files: Option<u32>,
    ) -> Self {
        let mut command = match max_open_files {
            // `exec` keeps the pid: the child is the server itself.
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(binary);
                shell
            }
            None => Command::new(binary),
        };
        command
            .args(["serve", "--port", "0"])
            .args(args)
            .env("JOBS_TABLE", &env.table)
            .env("JOBS_QUEUE_URL", &env.queues.queue_url)
            .env("RUST_LOG", "warn")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start jobline-local");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                if let Ok(mut log) = collected.lock() {
                    log.push_str(&String::from_utf8_lossy(&buffer[..read]));
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut banner = String::new();
        stdout.read_line(&mut banner).expect("read the banner");
        let addr = banner
            .strip_prefix("Jobline API on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {banner:?}; stderr: {}", log_of(&log)));
        // The rest of stdout is EMF metrics: keep the pipe drained.
        let metrics = Some(std::thread::spawn(move || {
            stdout.lines().map_while(Result::ok).collect()
        }));
        Self {
            child,
            addr,
            log,
            metrics,
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("query the child").is_none()
    }

    /// What the process wrote to stderr so far (its logs).
    pub fn log(&self) -> String {
        log_of(&self.log)
    }

    /// SIGKILL: no cleanup of any kind, as a crash or an OOM kill. Returns
    /// once the process is gone.
    pub fn kill(&mut self) {
        drop(self.child.kill());
        self.child.wait().expect("reap the child");
    }

    /// SIGTERM, as `kill`, `docker stop` and service managers stop it;
    /// returns once the process has exited.
    pub fn terminate(&mut self) -> Stopped {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let status = self.child.wait().expect("wait for the child");
        let metrics = self
            .metrics
            .take()
            .map(|lines| lines.join().expect("the stdout reader"))
            .unwrap_or_default();
        Stopped { status, metrics }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Stopped {
    /// Exited 0, having recorded at least one finished job in its metrics.
    pub fn assert_clean(&self) {
        assert!(self.status.success(), "exit status {}", self.status);
        assert!(
            self.metrics
                .iter()
                .any(|line| line.contains("\"JobsSucceeded\"")),
            "no JobsSucceeded metric in {:?}",
            self.metrics
        );
    }
}

fn log_of(log: &Mutex<String>) -> String {
    log.lock().map(|log| log.clone()).unwrap_or_default()
}
