//! How requests authenticate: [`Auth`] (none, a bearer token, or SigV4), and
//! the SigV4 [`Signer`] for a deployment whose routes use IAM authorization:
//! API Gateway checks a signature for the service `execute-api`, made with
//! the caller's AWS credentials and the API's region.
//!
//! The signature is computed with the `aws-sigv4` crate the SDK itself
//! signs with. The credentials come from the caller: fixed
//! ([`Signer::new`]), or a provider ([`Signer::from_provider`], e.g. an
//! `SdkConfig`'s `credentials_provider()`), asked again shortly before the
//! credentials it gave expire, so a long-lived client keeps working as a
//! role's credentials rotate. This crate never loads AWS configuration
//! itself.

use crate::error::SigningError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use hyper::body::Bytes;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// AWS credentials, as the SDK resolves them.
pub use aws_credential_types::Credentials;

/// The service name API Gateway checks signatures for.
pub const SERVICE: &str = "execute-api";

/// Credentials from a provider are asked for again this long before they
/// expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// How requests authenticate. Its `Debug` never shows a token.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials: the local server, or an API without an authorizer.
    #[default]
    None,
    /// `Authorization: Bearer <token>`, for a JWT authorizer.
    Bearer(String),
    /// SigV4, for routes with IAM authorization.
    SigV4(Signer),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(_) => f.write_str("Bearer(redacted)"),
            Self::SigV4(signer) => f.debug_tuple("SigV4").field(signer).finish(),
        }
    }
}

/// Signs requests for `execute-api` in one region.
#[derive(Debug, Clone)]
pub struct Signer {
    region: String,
    credentials: Arc<Source>,
}

#[derive(Debug)]
enum Source {
    Fixed(Credentials),
    Provider {
        provider: SharedCredentialsProvider,
        /// The credentials it last gave.
        cached: Mutex<Option<Credentials>>,
    },
}

impl Signer {
    /// Signs with these credentials (which are not refreshed) for the API
    /// in `region`.
    pub fn new(credentials: Credentials, region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            credentials: Arc::new(Source::Fixed(credentials)),
        }
    }

    /// Signs with the credentials of `provider` (for instance the
    /// `credentials_provider()` of an `aws_config::SdkConfig`), for the API
    /// in `region`. The provider is asked on the first request, and again
    /// when the credentials it gave are about to expire.
    pub fn from_provider(
        provider: impl ProvideCredentials + 'static,
        region: impl Into<String>,
    ) -> Self {
        Self {
            region: region.into(),
            credentials: Arc::new(Source::Provider {
                provider: SharedCredentialsProvider::new(provider),
                cached: Mutex::new(None),
            }),
        }
    }

    /// The region it signs for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The credentials to sign with at `at`.
    async fn credentials(&self, at: SystemTime) -> Result<Credentials, SigningError> {
        let (provider, cached) = match &*self.credentials {
            Source::Fixed(credentials) => return Ok(credentials.clone()),
            Source::Provider { provider, cached } => (provider, cached),
        };
        let mut cached = cached.lock().await;
        let fresh = |credentials: &Credentials| {
            credentials
                .expiry()
                .is_none_or(|expiry| at + REFRESH_BEFORE_EXPIRY < expiry)
        };
        if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| SigningError::Credentials(e.into()))?;
        *cached = Some(credentials.clone());
        Ok(credentials)
    }

    /// Adds `Authorization`, `X-Amz-Date` (and `X-Amz-Security-Token` for
    /// temporary credentials) for a request sent at `at`. Sign last: headers
    /// added afterwards are not covered.
    pub async fn sign(
        &self,
        request: &mut http::Request<Bytes>,
        at: SystemTime,
    ) -> Result<(), SigningError> {
        let identity = self.credentials(at).await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SigningError::Sign(e.into()))?
            .into();
        let uri = request.uri().to_string();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers,
            SignableBody::Bytes(request.body()),
        )
        .map_err(|e| SigningError::Sign(e.into()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SigningError::Sign(e.into()))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::future::ProvideCredentials as CredentialsFuture;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::UNIX_EPOCH;

    /// 2015-08-30T12:36:00Z, the date of AWS's SigV4 test suite.
    const AT_SECS: u64 = 1_440_938_160;

    fn credentials(session_token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        )
    }

    async fn signed(signer: &Signer, body: &'static [u8]) -> http::Request<Bytes> {
        let mut request =
            http::Request::post("https://abc123.execute-api.eu-west-1.amazonaws.com/prod/jobs")
                .header("content-type", "application/json")
                .body(Bytes::from_static(body))
                .unwrap();
        signer
            .sign(&mut request, UNIX_EPOCH + Duration::from_secs(AT_SECS))
            .await
            .unwrap();
        request
    }

    fn authorization(request: &http::Request<Bytes>) -> &str {
        request.headers()["authorization"].to_str().unwrap()
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", Auth::Bearer("eyJhbGciOi.secret".into()));
        assert_eq!(shown, "Bearer(redacted)");
        let signer = Signer::new(credentials(Some("session-token")), "eu-west-1");
        let shown = format!("{:?}", Auth::SigV4(signer));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("session-token"), "{shown}");
    }

    #[tokio::test]
    async fn signs_for_execute_api_in_the_configured_region() {
        let signer = Signer::new(credentials(None), "eu-west-1");
        let request = signed(&signer, b"{}").await;
        let authorization = authorization(&request);
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/execute-api/aws4_request, "
            ),
            "{authorization}"
        );
        assert!(
            authorization.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{authorization}"
        );
        assert_eq!(request.headers()["x-amz-date"], "20150830T123600Z");
        assert!(request.headers().get("x-amz-security-token").is_none());
    }

    #[tokio::test]
    async fn the_signature_covers_the_body() {
        let signer = Signer::new(credentials(None), "eu-west-1");
        let a = signed(&signer, b"{}").await;
        let b = signed(&signer, br#"{"type":"primes"}"#).await;
        assert_eq!(
            authorization(&a),
            authorization(&signed(&signer, b"{}").await)
        );
        assert_ne!(authorization(&a), authorization(&b));
    }

    #[tokio::test]
    async fn temporary_credentials_send_their_session_token() {
        let signer = Signer::new(credentials(Some("session-token")), "eu-west-1");
        let request = signed(&signer, b"{}").await;
        assert_eq!(request.headers()["x-amz-security-token"], "session-token");
    }

    /// A provider that counts its calls and gives credentials expiring
    /// `lifetime` after the signing time of the test.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU32>,
        lifetime: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let expiry = UNIX_EPOCH + Duration::from_secs(AT_SECS) + self.lifetime;
            CredentialsFuture::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                Some("token".into()),
                Some(expiry),
                "counting",
            )))
        }
    }

    #[tokio::test]
    async fn a_providers_credentials_are_kept_until_they_are_about_to_expire() {
        let calls = Arc::new(AtomicU32::new(0));
        let long = Signer::from_provider(
            Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(3600),
            },
            "eu-west-1",
        );
        for _ in 0..3 {
            let request = signed(&long, b"{}").await;
            assert!(authorization(&request).contains("Credential=AKID0/"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "asked once");

        let calls = Arc::new(AtomicU32::new(0));
        let short = Signer::from_provider(
            Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(60),
            },
            "eu-west-1",
        );
        signed(&short, b"{}").await;
        let request = signed(&short, b"{}").await;
        assert!(authorization(&request).contains("Credential=AKID1/"));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "asked again near expiry");
        assert_eq!(short.region(), "eu-west-1");
    }
}
