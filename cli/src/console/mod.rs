//! `jobline console`: a web console on 127.0.0.1 to see and steer every
//! job, with the operator's own AWS credentials (their IAM permissions are
//! its access control: there is no public endpoint and no second login).
//!
//! - [`guard`]: the host allow-list, the single-use launch token and its
//!   session cookie, and the CSRF checks (and why no browser is opened);
//! - [`pages`]: the overview, a job, the dead letters; [`job_list`]: the
//!   jobs by state, a tab each (scheduled ones with when they run);
//! - [`schedules`]: every caller's schedules and one schedule, with the
//!   API's code they act through ([`Scheduling`]), when the configuration
//!   has schedules;
//! - [`actions`]: cancel, run now, retry, replay and discard, and
//!   (`schedule_actions`) pause, resume, trigger and delete a schedule,
//!   each confirmed first (with a dry run for the dead-letter tools) and
//!   logged;
//! - [`html`]: the layout, forms and the activity chart.
//!
//! Where the numbers come from: job counts, lists and the oldest queued job
//! from the jobs table's indexes ([`OperatorStore::count_by_state`],
//! [`OperatorStore::list_by_state`], [`OperatorStore::oldest_queued`]): the
//! due index for queued and running jobs, the state index for failed and
//! cancelled ones, whose reads are bounded whatever the table holds;
//! succeeded jobs, in no index, from the `JobsSucceeded` metric; queue depths from SQS's queue
//! attributes ([`JobQueue::counts`], which receive nothing, so looking never
//! touches a dead letter); the per-minute chart from CloudWatch
//! ([`MetricHistory`]); locally nothing ingests the functions' EMF lines,
//! and the emulator's CloudWatch holds what `jobline-local serve
//! --ingest-metrics` puts there.
//!
//! Pages are rendered on the server from [maud] templates compiled into the
//! binary (the stylesheet is compiled in too): no script, no CDN, no Node
//! toolchain, no template file to ship. maud checks the markup when the
//! crate builds and escapes every value spliced into it, so a job's type,
//! caller, error or payload is always shown as text, never run as markup.

pub mod actions;
pub mod guard;
pub mod html;
pub mod job_files;
pub mod job_list;
pub mod pages;
mod schedule_actions;
pub mod schedules;

pub use schedules::Scheduling;

use crate::dlq::DeadLetterQueue;
use guard::{Access, Guard};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jobline_core::activity::MetricHistory;
use jobline_core::{Clock, JobQueue, OperatorStore};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The stylesheet, compiled in.
const CSS: &str = include_str!("console.css");
/// The largest action form accepted.
const MAX_FORM_BYTES: usize = 4 * 1024;

/// What the console reads and acts on.
#[derive(Debug, Clone)]
pub struct Console {
    pub store: Arc<dyn OperatorStore>,
    /// The main queue (`JOBS_QUEUE_URL`): retried and replayed jobs go there.
    pub queue: Arc<dyn JobQueue>,
    /// The dead-letter queue (`JOBS_DLQ_URL`).
    pub dlq: Arc<dyn JobQueue>,
    pub history: Arc<dyn MetricHistory>,
    pub guard: Guard,
    /// The AWS endpoint is an emulator's (`AWS_ENDPOINT_URL`): the chart
    /// says why it is empty.
    pub emulated: bool,
    /// The time pages show ages by and actions are stamped with.
    pub clock: Clock,
    /// The results bucket, where a job's outputs are listed and linked.
    pub bucket: Option<job_files::Bucket>,
}

/// Why a page or action failed: an AWS call (shown to the operator, whose
/// own tool this is, and logged).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Store(#[from] jobline_core::StoreError),
    #[error(transparent)]
    Queue(#[from] jobline_core::QueueError),
    #[error(transparent)]
    History(#[from] jobline_core::activity::HistoryError),
    #[error(transparent)]
    Dlq(#[from] crate::dlq::DlqError),
    #[error(transparent)]
    Retry(#[from] crate::jobs::RetryError),
    #[error(transparent)]
    Schedules(#[from] jobline_core::schedule::ScheduleStoreError),
    #[error(transparent)]
    Files(#[from] jobline_core::files::FileError),
    #[error(transparent)]
    Results(#[from] jobline_core::results::ResultError),
    /// The API's code failed (a schedule's or a job's action): its message
    /// and, for a failure of AWS, the detail the API keeps for its logs.
    #[error("{0}")]
    Api(String),
}

impl From<jobline_api::ApiError> for ConsoleError {
    fn from(error: jobline_api::ApiError) -> Self {
        Self::Api(match error.detail() {
            Some(detail) => format!("{error} ({detail})"),
            None => error.to_string(),
        })
    }
}

/// A page or an answer: status and HTML.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub html: String,
}

impl Reply {
    fn ok(html: String) -> Self {
        Self {
            status: StatusCode::OK,
            html,
        }
    }

    fn error(status: StatusCode, title: &str, message: &str) -> Self {
        let body = maud::html! {
            p class="notice error" role="alert" { (message) }
            p { a href="/" { "Back to the overview" } }
        };
        Self {
            status,
            html: html::page(title, html::Section::Overview, body),
        }
    }
}

/// `a=1&b=x+y` decoded (`+` is a space, `%XX` a byte).
pub fn parse_form(query: &str) -> HashMap<String, String> {
    let decode = |part: &str| {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |b: u8| char::from(b).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(high), Some(low)) => {
                            out.push((high * 16 + low) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

impl Console {
    /// Answers one request without the schedule parts: see
    /// [`handle_with`](Self::handle_with).
    pub async fn handle(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        self.handle_with(None, method, path_and_query, headers, body)
            .await
    }

    /// Answers one request: the guard first, then the page or action;
    /// `scheduling` is what the schedule pages and Run now act through
    /// (without it, the Schedules page says schedules are not enabled).
    pub async fn handle_with(
        &self,
        scheduling: Option<&Scheduling>,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let query = parse_form(query);
        let form = if method == Method::POST {
            parse_form(&String::from_utf8_lossy(body))
        } else {
            HashMap::new()
        };
        let access = self.guard.check(
            method,
            headers,
            query.get("token").map(String::as_str),
            form.get("csrf").map(String::as_str),
        );
        match access {
            Err(refusal) => {
                tracing::warn!(?refusal, %method, path, "console request refused");
                respond(Reply::error(
                    StatusCode::FORBIDDEN,
                    "Not allowed",
                    refusal.message(),
                ))
            }
            Ok(Access::Enter) => {
                // Trade the URL's token for the cookie, and leave no token in
                // the address bar, the history or a Referer.
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::SEE_OTHER;
                let headers = response.headers_mut();
                headers.insert(header::LOCATION, HeaderValue::from_static("/"));
                if let Ok(cookie) = HeaderValue::from_str(&self.guard.cookie()) {
                    headers.insert(header::SET_COOKIE, cookie);
                }
                secure(headers);
                response
            }
            Ok(Access::Granted) => {
                if method == Method::GET && path == "/console.css" {
                    let mut response = Response::new(Full::new(Bytes::from_static(CSS.as_bytes())));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/css; charset=utf-8"),
                    );
                    secure(response.headers_mut());
                    return response;
                }
                respond(self.route(scheduling, method, path, &query, &form).await)
            }
        }
    }

    async fn route(
        &self,
        scheduling: Option<&Scheduling>,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
        form: &HashMap<String, String>,
    ) -> Reply {
        let now = self.clock.now_ms();
        let replied = match (method, path) {
            (&Method::GET, "/") => pages::overview(self, now).await,
            (&Method::GET, "/jobs") => job_list::jobs(self, query, now).await,
            (&Method::GET, "/schedules") => schedules::list(scheduling, query, now).await,
            (&Method::GET, "/dlq") => pages::dead_letters(self, now).await,
            (&Method::GET, "/confirm") => actions::confirm(self, scheduling, query).await,
            (&Method::POST, "/act") => actions::act(self, scheduling, form).await,
            (&Method::GET, path) if path.starts_with("/jobs/") => {
                pages::job(self, &path["/jobs/".len()..], now).await
            }
            (&Method::GET, path) if path.starts_with("/schedules/") => {
                schedules::show(scheduling, &path["/schedules/".len()..], query, now).await
            }
            (&Method::GET, _) => Ok(Reply::error(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page in the console.",
            )),
            _ => Ok(Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed",
                "Only pages (GET) and confirmed actions (POST /act) are served.",
            )),
        };
        replied.unwrap_or_else(|error| {
            tracing::error!(%error, path, "console page failed");
            Reply::error(
                StatusCode::BAD_GATEWAY,
                "AWS call failed",
                &format!(
                    "Reading or writing AWS failed: {error}. Check your credentials and the JOBS_* settings, then reload."
                ),
            )
        })
    }

    /// The dead-letter tools on this console's queues and store.
    fn tools(&self) -> DeadLetterQueue<'_> {
        DeadLetterQueue::new(&*self.dlq, &*self.queue, &*self.store).with_clock(self.clock.clone())
    }
}

/// Headers every answer carries: no caching, no framing, no script, no
/// form posted elsewhere, no Referer to other sites (`no-referrer` would
/// make the browser send `Origin: null` with the console's own forms).
fn secure(headers: &mut HeaderMap) {
    let fixed = [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn respond(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.html)));
    *response.status_mut() = reply.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(response.headers_mut());
    response
}

/// Serves `console` without the schedule parts: see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    console: Arc<Console>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, console, None, shutdown).await
}

/// Serves `console` (with `scheduling`, its schedule parts, if any) on
/// `listener` until `shutdown` completes. Connections run on this thread
/// (a `LocalSet`): the DLQ tools' futures are not `Send`, and one
/// operator's browser needs no more.
pub async fn serve_with(
    listener: TcpListener,
    console: Arc<Console>,
    scheduling: Option<Scheduling>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::task::LocalSet::new()
        .run_until(accept(
            listener,
            console,
            scheduling.map(Arc::new),
            shutdown,
        ))
        .await
}

async fn accept(
    listener: TcpListener,
    console: Arc<Console>,
    scheduling: Option<Arc<Scheduling>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a console connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let (console, scheduling) = (console.clone(), scheduling.clone());
        tokio::task::spawn_local(async move {
            let service = service_fn(move |request: hyper::Request<Incoming>| {
                let (console, scheduling) = (console.clone(), scheduling.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let path = parts
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str())
                        .to_owned();
                    let body = match Limited::new(body, MAX_FORM_BYTES).collect().await {
                        Ok(collected) => collected.to_bytes(),
                        Err(_) => {
                            return Ok::<_, Infallible>(respond(Reply::error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "Too large",
                                "A console form is a few hundred bytes.",
                            )));
                        }
                    };
                    Ok(console
                        .handle_with(
                            scheduling.as_deref(),
                            &parts.method,
                            &path,
                            &parts.headers,
                            &body,
                        )
                        .await)
                }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "console connection ended");
            }
        });
    }
}

#[cfg(test)]
mod schedule_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use jobline_core::{ApiStore, JobState, Metric};
    use jobline_testkit::memory::activity::FixedHistory;
    use jobline_testkit::memory::queue::MemoryQueue;
    use jobline_testkit::memory::store::MemoryStore;
    use jobline_testkit::testing::job;

    fn console(store: MemoryStore) -> Console {
        let history = FixedHistory::new();
        history.record(Metric::JobsFailed, jobline_testkit::testing::now_ms(), 2.0);
        Console {
            store: Arc::new(store),
            queue: Arc::new(MemoryQueue::new()),
            dlq: Arc::new(MemoryQueue::new()),
            history: Arc::new(history),
            guard: Guard::new(4321),
            emulated: false,
            bucket: None,
            clock: Clock::system(),
        }
    }

    fn headers(pairs: &[(header::HeaderName, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, HeaderValue::from_static("127.0.0.1:4321"));
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    async fn text(response: Response<Full<Bytes>>) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_launch_url_sets_the_cookie_that_opens_the_pages() {
        let store = MemoryStore::new();
        store
            .create(&job("primes").state(JobState::Failed).build())
            .await
            .unwrap();
        let console = console(store);
        let url = console.guard.launch_url();
        let path = &url[url.find("/?").unwrap()..];

        let entered = console.handle(&Method::GET, path, &headers(&[]), b"").await;
        assert_eq!(entered.status(), StatusCode::SEE_OTHER);
        assert_eq!(entered.headers()[header::LOCATION], "/");
        let cookie = entered.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );

        let with_cookie =
            headers(&[(header::COOKIE, cookie.split(';').next().unwrap().to_owned())]);
        let overview = console.handle(&Method::GET, "/", &with_cookie, b"").await;
        assert_eq!(overview.status(), StatusCode::OK);
        let csp = overview.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(overview.headers()[header::CACHE_CONTROL], "no-store");
        let html = text(overview).await;
        assert!(html.contains(r#"data-count="failed">1<"#), "{html}");
        assert!(html.contains(r#"data-total="failed">2<"#), "{html}");

        let missing = console
            .handle(&Method::GET, "/nowhere", &with_cookie, b"")
            .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let bad_state = console
            .handle(&Method::GET, "/jobs?state=paused", &with_cookie, b"")
            .await;
        assert_eq!(bad_state.status(), StatusCode::BAD_REQUEST);
        let refused = console.handle(&Method::GET, "/", &headers(&[]), b"").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(text(refused).await.contains("jobline console"));

        // The launch URL works once: another browser that opens it (or
        // anyone who read it since) is refused, and told why.
        let again = console.handle(&Method::GET, path, &headers(&[]), b"").await;
        assert_eq!(again.status(), StatusCode::FORBIDDEN);
        assert!(again.headers().get(header::SET_COOKIE).is_none());
        let page = text(again).await;
        assert!(page.contains("already been used"), "{page}");
        // The browser that used it still gets in, even by the launch URL.
        let reopened = console.handle(&Method::GET, path, &with_cookie, b"").await;
        assert_eq!(reopened.status(), StatusCode::OK);
    }

    /// Two weeks after a job was dead-lettered its DLQ message has
    /// expired: the Dead letters page says so and offers Retry, and the
    /// replay's confirmation names the job and Retry instead of "nothing".
    #[tokio::test]
    async fn a_dead_letter_past_the_dlqs_retention_is_shown_as_expired_with_retry() {
        let failed_at = 1_800_000_000_000;
        let store = MemoryStore::new();
        let old = job("primes")
            .state(JobState::Failed)
            .dead_lettered(true)
            .attempts(5)
            .finished_at(failed_at)
            .build();
        store.create(&old).await.unwrap();
        let mut console = console(store);
        console.clock = Clock::at(failed_at + 15 * 86_400_000);
        let session = headers(&[(header::COOKIE, console.guard.cookie())]);
        let page = text(console.handle(&Method::GET, "/dlq", &session, b"").await).await;
        assert!(page.contains("dead letter expired"), "{page}");
        assert!(page.contains(r#"data-expired="1""#), "{page}");
        assert!(
            page.contains(&format!("/confirm?action=retry&amp;job={}", old.id)),
            "{page}"
        );
        let confirm = console
            .handle(
                &Method::GET,
                &format!("/confirm?action=replay&job={}", old.id),
                &session,
                b"",
            )
            .await;
        let page = text(confirm).await;
        assert!(
            page.contains(&format!(r#"data-not-in-dlq="{}""#, old.id)),
            "{page}"
        );
    }

    #[test]
    fn forms_decode_plus_and_percent_escapes() {
        let form = parse_form("a=x+y&b=%2F%e2%82%ac&c=%zz&d");
        assert_eq!(form["a"], "x y");
        assert_eq!(form["b"], "/€");
        assert_eq!(form["c"], "%zz");
        assert_eq!(form["d"], "");
    }
}
