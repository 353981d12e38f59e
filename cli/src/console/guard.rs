//! Who may use the console: only a browser on this machine that opened the
//! URL `jobline console` printed.
//!
//! A loopback port is reachable by anything on the machine: other users, and
//! any web page the operator visits (a cross-site form, or DNS rebinding,
//! where an attacker's name resolves to 127.0.0.1). So every request must
//!
//! - name an allowed `Host` (`127.0.0.1`, `localhost` or `[::1]` with the
//!   console's port): a rebound name is refused;
//! - carry the launch token, made fresh at each start and printed in the URL
//!   (as notebook servers do): the first visit trades it for a cookie
//!   (`HttpOnly`, `SameSite=Strict`) and is redirected to a URL without it;
//! - for an action (`POST`), come from the console's own origin (`Origin`)
//!   and carry the form's CSRF token, which only the console's own pages hold.

use http::{HeaderMap, Method, header};

/// The cookie that holds the launch token.
pub const COOKIE: &str = "jobline_console";

/// Why a request is refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` header is not this console's.
    Host,
    /// Neither the cookie nor the URL carries the launch token.
    Token,
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
    /// The URL carries the token: set the cookie and redirect to the URL
    /// without it.
    Enter,
}

/// The launch's tokens and the names it answers to.
#[derive(Clone)]
pub struct Guard {
    token: String,
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
    /// Fresh tokens for a console on `port`.
    pub fn new(port: u16) -> Self {
        Self {
            token: random_token(),
            csrf: random_token(),
            port,
        }
    }

    /// The URL to open: the console with the launch token.
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

    /// Checks a request's host, token and origin; `url_token` is the
    /// `token` query parameter, `form_csrf` the CSRF field of an action.
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
        let access = if cookie_token.is_some_and(|t| same_secret(t, &self.token)) {
            Access::Granted
        } else if method == Method::GET && url_token.is_some_and(|t| same_secret(t, &self.token)) {
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

    /// The `Set-Cookie` value that grants this launch's access.
    pub fn cookie(&self) -> String {
        format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.token)
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
        let cookie = format!("other=1; {COOKIE}={token}");
        let get = Method::GET;
        let own = headers(&[(header::HOST, "127.0.0.1:4000"), (header::COOKIE, &cookie)]);
        assert_eq!(guard.check(&get, &own, None, None), Ok(Access::Granted));
        let local = headers(&[(header::HOST, "localhost:4000"), (header::COOKIE, &cookie)]);
        assert_eq!(guard.check(&get, &local, None, None), Ok(Access::Granted));

        let first = headers(&[(header::HOST, "127.0.0.1:4000")]);
        assert_eq!(
            guard.check(&get, &first, Some(&token), None),
            Ok(Access::Enter)
        );
        assert_eq!(guard.check(&get, &first, None, None), Err(Refusal::Token));
        assert_eq!(
            guard.check(&get, &first, Some(&guard.csrf), None),
            Err(Refusal::Token),
            "the CSRF token is not the launch token"
        );
        let stale = headers(&[
            (header::HOST, "127.0.0.1:4000"),
            (header::COOKIE, "jobline_console=x"),
        ]);
        assert_eq!(guard.check(&get, &stale, None, None), Err(Refusal::Token));

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
    fn actions_need_the_own_origin_and_the_form_token() {
        let guard = Guard::new(4000);
        let cookie = format!("{COOKIE}={}", guard.token);
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
        assert_ne!(a.csrf, b.csrf);
        assert_eq!(a.token.len(), 64);
        assert!(a.launch_url().ends_with(&a.token));
        assert!(
            format!("{a:?}").find(&a.token).is_none(),
            "no token in Debug"
        );
    }
}
