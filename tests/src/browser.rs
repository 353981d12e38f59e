//! A real browser for the tests that assert on what a person sees: headless
//! Chromium, driven through ChromeDriver over WebDriver with [`fantoccini`].
//!
//! [`Browser::launch`] starts ChromeDriver on a free loopback port and opens
//! a session with a fresh profile in a temporary directory. Dropping the
//! [`Browser`], even in a test that panics, kills ChromeDriver and every
//! Chromium process it started (they share its process group) and removes
//! the profile; [`Browser::close`] ends the session politely first.
//!
//! Chromium and ChromeDriver come from Debian's packages (`chromium`,
//! `chromium-driver`), which `scripts/test` installs when they are missing:
//! a missing browser fails the test, it never skips it. `JOBLINE_CHROMIUM`
//! and `JOBLINE_CHROMEDRIVER` point at other binaries.
//!
//! Chromium runs with its background networking off (component updates,
//! sync, QUIC, ...): on a machine whose network is closed it would otherwise
//! stall on refused connections.

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Overrides the Chromium binary (`/usr/bin/chromium`).
const CHROMIUM_VARIABLE: &str = "JOBLINE_CHROMIUM";

/// Overrides the ChromeDriver binary (`/usr/bin/chromedriver`).
const CHROMEDRIVER_VARIABLE: &str = "JOBLINE_CHROMEDRIVER";

/// How long ChromeDriver has to answer, and then to start Chromium.
const STARTUP: Duration = Duration::from_secs(60);

/// How long [`Browser::text`] waits for its element to appear.
const APPEAR: Duration = Duration::from_secs(10);

/// Every PNG file starts with these bytes.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Chromium's flags: headless, no sandbox (tests run as root in
/// containers), no GPU, and nothing that reaches out to the network.
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// A headless Chromium with its WebDriver session.
#[derive(Debug)]
pub struct Browser {
    // Declared first, so dropped before the driver it talks to.
    client: Client,
    /// Held for its `Drop`: ChromeDriver and Chromium end with the browser.
    _driver: Driver,
}

/// The ChromeDriver process and the temporary directory of its log and
/// Chromium's profile; dropping it kills the process group and removes the
/// directory.
#[derive(Debug)]
struct Driver {
    process: Child,
    dir: PathBuf,
}

impl Browser {
    /// Starts ChromeDriver and opens a session with a new headless Chromium.
    /// Panics, saying how to install them, if either binary is missing, and
    /// with ChromeDriver's log if it does not start within a minute.
    pub async fn launch() -> Self {
        let chromium = executable(CHROMIUM_VARIABLE, "/usr/bin/chromium", "Chromium");
        let chromedriver = executable(
            CHROMEDRIVER_VARIABLE,
            "/usr/bin/chromedriver",
            "ChromeDriver",
        );
        let port = free_port();
        let mut driver = Driver::start(&chromedriver, port);
        let url = format!("http://127.0.0.1:{port}");
        driver.wait_until_answering(&url).await;

        let profile = driver.dir.join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let session = tokio::time::timeout(
            STARTUP,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&url),
        )
        .await;
        let client = match session {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "ChromeDriver could not start {} for a session: {e}\n{}",
                chromium.display(),
                driver.log()
            ),
            Err(_) => panic!(
                "ChromeDriver did not start {} within {STARTUP:?}\n{}",
                chromium.display(),
                driver.log()
            ),
        };
        Self {
            client,
            _driver: driver,
        }
    }

    /// The WebDriver client, for everything the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url} in the browser: {e}"));
    }

    /// The visible text of the first element that matches the CSS selector
    /// `css`, as a person would read it (rendered, hidden parts left out),
    /// waiting up to 10 s for one to appear.
    pub async fn text(&self, css: &str) -> String {
        let element = self
            .client
            .wait()
            .at_most(APPEAR)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element matches {css:?} within {APPEAR:?}: {e}"));
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("read the text of {css:?}: {e}"))
    }

    /// Saves a screenshot of the window as
    /// `<target dir>/console-screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        assert!(
            !name.is_empty() && !name.contains(['/', '\\']),
            "a screenshot's name is a plain file name, without .png (got {name:?})"
        );
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("take the screenshot {name:?}: {e}"));
        assert!(
            png.starts_with(PNG_SIGNATURE) && png.len() > PNG_SIGNATURE.len(),
            "the screenshot {name:?} is not a PNG image ({} bytes)",
            png.len()
        );
        let dir = target_dir().join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Ends the session (ChromeDriver quits Chromium), then stops
    /// ChromeDriver and removes the profile.
    pub async fn close(self) {
        self.client
            .clone()
            .close()
            .await
            .expect("end the browser's WebDriver session");
    }
}

impl Driver {
    /// Starts `chromedriver` on 127.0.0.1:`port` in a process group of its
    /// own, which the Chromium processes it starts join.
    fn start(chromedriver: &Path, port: u16) -> Self {
        let dir =
            std::env::temp_dir().join(format!("jobline-browser-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let log = std::fs::File::create(dir.join("chromedriver.log"))
            .unwrap_or_else(|e| panic!("create ChromeDriver's log in {}: {e}", dir.display()));
        let stderr = log
            .try_clone()
            .unwrap_or_else(|e| panic!("share ChromeDriver's log: {e}"));
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0)
            .spawn();
        match process {
            Ok(process) => Self { process, dir },
            Err(e) => {
                drop(std::fs::remove_dir_all(&dir));
                panic!("start {}: {e}", chromedriver.display());
            }
        }
    }

    /// Waits until ChromeDriver answers `GET /status` at `url`; panics with
    /// its log if it exits or stays silent for a minute.
    async fn wait_until_answering(&mut self, url: &str) {
        let status: hyper::Uri = format!("{url}/status")
            .parse()
            .expect("a loopback URL is a valid URI");
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>();
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(exit)) = self.process.try_wait() {
                panic!(
                    "ChromeDriver exited ({exit}) before answering on {url}\n{}",
                    self.log()
                );
            }
            let answer =
                tokio::time::timeout(Duration::from_secs(1), http.get(status.clone())).await;
            if matches!(answer, Ok(Ok(ref response)) if response.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ChromeDriver did not answer on {url} within {STARTUP:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// ChromeDriver's output so far, for a panic message (its file goes
    /// with the temporary directory).
    fn log(&self) -> String {
        match std::fs::read_to_string(self.dir.join("chromedriver.log")) {
            Ok(log) => format!("ChromeDriver's output:\n{log}"),
            Err(e) => format!("(ChromeDriver's output is unreadable: {e})"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // ChromeDriver leads its process group, and Chromium's processes
        // stay in it (its crash handlers leave it, and exit with the
        // browser): one signal ends them all, however the test ended.
        let group = format!("-{}", self.process.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !killed {
            drop(self.process.kill());
        }
        drop(self.process.wait());
        // A process killed while creating a file in the profile may still
        // finish that: try again briefly until the directory is gone.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The binary named by `variable`, else `default`; panics, saying how to
/// install it, if it is not there.
fn executable(variable: &str, default: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.is_file(),
        "{what} is not installed at {} (set {variable} to use another): the browser tests need \
         Debian's chromium and chromium-driver packages; ./scripts/test installs them, or run \
         apt-get install -y chromium chromium-driver",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1, for ChromeDriver to listen on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set (relative to the
/// workspace root if relative), else the workspace's `target/`.
fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}
