//! Who may use the console: only a browser on this machine that opened the
//! URL `jobline console` printed, the first to open it.
//!
//! A loopback port is reachable by anything on the machine: other users, and
//! any web page the operator visits (a cross-site form, or DNS rebinding,
//! where an attacker's name resolves to 127.0.0.1). So every request must
//!
//! - name an allowed `Host` (`127.0.0.1`, `localhost` or `[::1]` with the
//!   console's port): a rebound name is refused;
//! - carry this launch's session cookie (`HttpOnly`, `SameSite=Strict`), or,
//!   once, the launch token, made fresh at each start and printed in the URL
//!   (as notebook servers do). The first visit with the token trades it for
//!   the cookie and is redirected to a URL without it; from then on the
//!   token opens nothing (a visit with it and without the cookie is refused
//!   with a page that says so), so a URL that lingers in a terminal's
//!   scrollback, a log or a shared screen is worth nothing once the operator
//!   has opened it. The cookie is its own secret, never printed: knowing the
//!   used token does not let anyone forge it;
//! - for an action (`POST`), come from the console's own origin (`Origin`)
//!   and carry the form's CSRF token, which only the console's own pages hold.
//!
//! # Why the console opens no browser
//!
//! `jobline console` prints the URL and stops there; the operator opens it
//! (most terminals open a URL on a click). Handing it to the desktop would
//! put the token on a command line: `xdg-open URL` or `open URL`, and then
//! the browser it starts, whose arguments stay in the process table for the
//! browser's whole life. Any user of the machine reads those (`ps`), and
//! they are exactly who the token keeps out. The way around it, a private
//! (0600) HTML file that redirects to the URL, opened by its path (how
//! notebook servers do it), is not reliable enough to be the default: the
//! browsers of a desktop's default install are often sandboxed (Ubuntu's snap
//! Firefox and Chromium, Flatpak) and cannot read a file in the temporary
//! directory, a Windows browser opened from WSL cannot read a Linux path, and
//! a navigation that starts on a `file://` page is cross-site, so the
//! `SameSite=Strict` cookie would not follow the redirect that drops the
//! token: the first visit would spend the single-use token and still be
//! refused. A printed URL has none of these failures.

use http::{HeaderMap, Method, header};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The cookie that holds the launch token.
pub const COOKIE: &str = "jobline_console";

/// Why a request is refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` header is not this console's.
    Host,
    /// Neither the cookie nor the URL carries this launch's secret.
    Token,
    /// The URL carries the launch token, which a first visit already traded
    /// for the cookie.
    TokenUsed,
    /// An action from another origin, or with no `Origin`.
    Origin,
    /// An action without the form's CSRF token.
    Csrf,
}

impl Refusal {
    /// What the refused person reads.
    pub fn message(self) -> &'static str {
        match self {
            Self::Host => {
                "This console answers only at 127.0.0.1, localhost or [::1] on its own port."
            }
            Self::Token => {
                "Open the console with the URL that `jobline console` printed: it carries this launch's token."
            }
            Self::TokenUsed => {
                "This launch URL has already been used: it opens the console once, in the browser that opened it first. If that was not you, stop `jobline console` (Ctrl-C) and start it again for a new URL."
            }
            Self::Origin => "Actions are accepted only from the console's own pages.",
            Self::Csrf => {
                "This form is not from this console's current launch: reload the page and try again."
            }
        }
    }
}

/// A request the guard let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The cookie carries the token.
    Granted,
    /// The URL carries the token, for the first time: set the cookie and
    /// redirect to the URL without it.
    Enter,
}

/// The launch's secrets and the names it answers to. Clones share whether
/// the launch token was used.
#[derive(Clone)]
pub struct Guard {
    /// The launch token, in the printed URL: good for one visit.
    token: String,
    /// Whether a visit has traded the launch token for the cookie.
    token_used: Arc<AtomicBool>,
    /// The cookie's value, handed out once, in exchange for the token.
    session: String,
    csrf: String,
    port: u16,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// 256 random bits from the OS, as hex.
fn random_token() -> String {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    format!("{}{}", a.simple(), b.simple())
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

impl Guard {
    /// Fresh secrets for a console on `port`.
    pub fn new(port: u16) -> Self {
        Self {
            token: random_token(),
            token_used: Arc::new(AtomicBool::new(false)),
            session: random_token(),
            csrf: random_token(),
            port,
        }
    }

    /// The URL to open: the console with the launch token (one visit).
    pub fn launch_url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }

    /// The token the console's forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    fn allowed_host(&self, host: &str) -> bool {
        ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|name| host == format!("{name}:{}", self.port))
    }

    /// Checks a request's host, cookie or token, and origin; `url_token` is
    /// the `token` query parameter, `form_csrf` the CSRF field of an action.
    /// The answer [`Access::Enter`] is given once: it uses the token up.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        url_token: Option<&str>,
        form_csrf: Option<&str>,
    ) -> Result<Access, Refusal> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let host = header(header::HOST).ok_or(Refusal::Host)?;
        if !self.allowed_host(host) {
            return Err(Refusal::Host);
        }
        let cookie_token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value);
        let access = if cookie_token.is_some_and(|t| same_secret(t, &self.session)) {
            Access::Granted
        } else if method == Method::GET && url_token.is_some_and(|t| same_secret(t, &self.token)) {
            // One visit, even of two racing: the first to swap wins.
            if self.token_used.swap(true, Ordering::SeqCst) {
                return Err(Refusal::TokenUsed);
            }
            Access::Enter
        } else {
            return Err(Refusal::Token);
        };
        if method != Method::GET && method != Method::HEAD {
            let origin = header(header::ORIGIN).ok_or(Refusal::Origin)?;
            let own = origin
                .strip_prefix("http://")
                .is_some_and(|host| self.allowed_host(host));
            if !own {
                return Err(Refusal::Origin);
            }
            if !form_csrf.is_some_and(|t| same_secret(t, &self.csrf)) {
                return Err(Refusal::Csrf);
            }
        }
        Ok(access)
    }

    /// The `Set-Cookie` value that grants this launch's access: the
    /// session secret, not the launch token.
    pub fn cookie(&self) -> String {
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            self.session
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_the_launch_token_on_an_own_host_gets_in() {
        let guard = Guard::new(4000);
        let token = guard.token.clone();
        let cookie = format!("other=1; {COOKIE}={}", guard.session);
        let get = Method::GET;
        let own = headers(&[(header::HOST, "127.0.0.1:4000"), (header::COOKIE, &cookie)]);
        assert_eq!(guard.check(&get, &own, None, None), Ok(Access::Granted));
        let local = headers(&[(header::HOST, "localhost:4000"), (header::COOKIE, &cookie)]);
        assert_eq!(guard.check(&get, &local, None, None), Ok(Access::Granted));

        let first = headers(&[(header::HOST, "127.0.0.1:4000")]);
        assert_eq!(guard.check(&get, &first, None, None), Err(Refusal::Token));
        assert_eq!(
            guard.check(&get, &first, Some(&guard.csrf), None),
            Err(Refusal::Token),
            "the CSRF token is not the launch token"
        );
        assert_eq!(
            guard.check(&get, &first, Some(&token), None),
            Ok(Access::Enter)
        );
        for stale in ["jobline_console=x", &format!("{COOKIE}={token}")] {
            let stale = headers(&[(header::HOST, "127.0.0.1:4000"), (header::COOKIE, stale)]);
            assert_eq!(
                guard.check(&get, &stale, None, None),
                Err(Refusal::Token),
                "the launch token is not the cookie"
            );
        }

        for host in [
            "evil.example:4000",
            "127.0.0.1:4001",
            "127.0.0.1",
            "attacker.test",
        ] {
            let rebound = headers(&[(header::HOST, host), (header::COOKIE, &cookie)]);
            assert_eq!(
                guard.check(&get, &rebound, Some(&token), None),
                Err(Refusal::Host),
                "{host}"
            );
        }
        assert_eq!(
            guard.check(&get, &HeaderMap::new(), None, None),
            Err(Refusal::Host)
        );
    }

    #[test]
    fn the_launch_token_opens_the_console_once() {
        let guard = Guard::new(4000);
        let get = Method::GET;
        let bare = headers(&[(header::HOST, "127.0.0.1:4000")]);
        // A clone (the server's) shares the token's use.
        let served = guard.clone();
        assert_eq!(
            served.check(&get, &bare, Some(&guard.token), None),
            Ok(Access::Enter)
        );
        for check in [&guard, &served] {
            assert_eq!(
                check.check(&get, &bare, Some(&guard.token), None),
                Err(Refusal::TokenUsed),
                "a second visit with the token"
            );
        }
        assert!(Refusal::TokenUsed.message().contains("already been used"));
        // The browser that used it has the cookie, with or without the token.
        let cookie = guard.cookie();
        let cookie = cookie.split(';').next().unwrap();
        let own = headers(&[(header::HOST, "127.0.0.1:4000"), (header::COOKIE, cookie)]);
        assert_eq!(guard.check(&get, &own, None, None), Ok(Access::Granted));
        assert_eq!(
            guard.check(&get, &own, Some(&guard.token), None),
            Ok(Access::Granted)
        );
        // A wrong token is still just a wrong token.
        assert_eq!(
            guard.check(&get, &bare, Some("0".repeat(64).as_str()), None),
            Err(Refusal::Token)
        );
    }

    #[test]
    fn of_two_racing_first_visits_one_gets_in() {
        let guard = Guard::new(4000);
        let bare = headers(&[(header::HOST, "127.0.0.1:4000")]);
        let entered: Vec<_> = std::thread::scope(|scope| {
            let visits: Vec<_> = (0..8)
                .map(|_| {
                    let (guard, bare) = (guard.clone(), bare.clone());
                    scope.spawn(move || guard.check(&Method::GET, &bare, Some(&guard.token), None))
                })
                .collect();
            visits.into_iter().map(|v| v.join().unwrap()).collect()
        });
        assert_eq!(
            entered.iter().filter(|a| **a == Ok(Access::Enter)).count(),
            1
        );
        assert_eq!(
            entered
                .iter()
                .filter(|a| **a == Err(Refusal::TokenUsed))
                .count(),
            7
        );
    }

    #[test]
    fn actions_need_the_own_origin_and_the_form_token() {
        let guard = Guard::new(4000);
        let cookie = format!("{COOKIE}={}", guard.session);
        let post = Method::POST;
        let from = |origin: Option<&str>| {
            let mut map = headers(&[(header::HOST, "127.0.0.1:4000"), (header::COOKIE, &cookie)]);
            if let Some(origin) = origin {
                map.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            }
            map
        };
        let csrf = guard.csrf.clone();
        let own = from(Some("http://127.0.0.1:4000"));
        assert_eq!(
            guard.check(&post, &own, None, Some(&csrf)),
            Ok(Access::Granted)
        );
        assert_eq!(guard.check(&post, &own, None, None), Err(Refusal::Csrf));
        assert_eq!(
            guard.check(&post, &own, None, Some("forged")),
            Err(Refusal::Csrf)
        );
        for origin in [
            Some("http://evil.example"),
            Some("null"),
            Some("https://127.0.0.1:4000"),
            None,
        ] {
            assert_eq!(
                guard.check(&post, &from(origin), None, Some(&csrf)),
                Err(Refusal::Origin),
                "{origin:?}"
            );
        }
        // The URL's token never authorises an action.
        let bare = headers(&[
            (header::HOST, "127.0.0.1:4000"),
            (header::ORIGIN, "http://127.0.0.1:4000"),
        ]);
        assert_eq!(
            guard.check(&post, &bare, Some(&guard.token), Some(&csrf)),
            Err(Refusal::Token)
        );
    }

    #[test]
    fn each_launch_has_its_own_tokens() {
        let (a, b) = (Guard::new(1), Guard::new(1));
        assert_ne!(a.token, b.token);
        assert_ne!(a.session, b.session);
        assert_ne!(a.csrf, b.csrf);
        assert_ne!(a.token, a.session);
        assert_eq!(a.token.len(), 64);
        assert_eq!(a.session.len(), 64);
        assert!(a.launch_url().ends_with(&a.token));
        assert!(!a.launch_url().contains(&a.session));
        assert!(a.cookie().contains(&a.session) && !a.cookie().contains(&a.token));
        let debug = format!("{a:?}");
        for secret in [&a.token, &a.session, &a.csrf] {
            assert!(!debug.contains(secret.as_str()), "no secret in Debug");
        }
    }
}
