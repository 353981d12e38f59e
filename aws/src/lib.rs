//! The AWS SDK set-up every Lambda function shares, made once per cold
//! start. This crate builds no service client: each adapter crate
//! (`adapters/`, `webhooks/`) builds its own from the [`SdkConfig`] made
//! here, so a function links only the SDKs it calls.
//!
//! [`lambda_sdk_config`] builds the configuration by hand rather than with
//! `aws-config`, whose loader brings the STS SDK and the profile and SSO
//! machinery into every function that links it (none calls STS), and which
//! a function does not need: Lambda hands it everything in environment
//! variables. It keeps the functions' init short (init time is billed;
//! BENCHMARKS.md):
//! - credentials and region come straight from the environment variables
//!   Lambda always sets (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_REGION`), so no provider chain is built;
//! - `AWS_ENDPOINT_URL`, the SDKs' standard variable, points every client at
//!   another endpoint: that is how the local runner, the tests and the bench
//!   point the functions at the moto emulator;
//! - retries and timeouts are the SDK's defaults (standard retries, three
//!   attempts; 3.1 s to connect), each operation then bounded by the
//!   function's [`AwsTimeouts`] ([`bounded`]);
//! - HTTPS trusts only the Amazon Trust Services roots built into the binary
//!   ([`TrustRoots`]): the SDK's default client reads and parses the
//!   operating system's whole CA store while the clients are built, which
//!   was two thirds of the functions' init time over a hello-world binary.
//!   Their only HTTPS peers are AWS endpoints, whose certificates all chain
//!   to those roots.
//!
//! Tools run by people (the CLI, the local runner, the tests) load the SDK's
//! default chains with `aws-config` themselves: profiles, SSO, and the
//! system's CA store, which may hold a corporate proxy's CA.

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_async::rt::sleep::default_async_sleep;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::SdkConfig;
use aws_types::region::Region;
pub use jobline_core::config::TrustRoots;
use jobline_core::config::{Config, WorkerConfig};
use jobline_core::error::BoxError;
use std::time::Duration;

/// An SDK error with its whole chain in its message (an `SdkError` alone
/// displays as just "service error").
pub fn sdk_error(error: impl std::error::Error + 'static) -> BoxError {
    aws_smithy_types::error::display::DisplayErrorContext(error)
        .to_string()
        .into()
}

/// The root certificates of Amazon Trust Services (Amazon Root CA 1 to 4 and
/// Starfield Services Root CA G2), PEM-encoded.
const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// An HTTPS client that trusts only the Amazon Trust Services roots.
fn amazon_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    let trust_store = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM);
    let tls_context = TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .expect("a TLS context with only a trust store always builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls_context)
        .build_https()
}

/// The bounds on one function's AWS calls: each operation, all its attempts
/// included, and each attempt, so that the SDK's retries fit in the
/// operation. Each is shorter than the interval it protects: a call that
/// hangs (a stalled connection, an overloaded endpoint) ends as an error the
/// caller handles, instead of holding what waits on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTimeouts {
    pub operation: Duration,
    pub attempt: Duration,
}

impl AwsTimeouts {
    /// An operation of `operation`, in attempts of a third of it, so the
    /// SDK's default of three attempts fits, but of at least a second (or
    /// the whole operation, if shorter): an attempt cut shorter fails on a
    /// merely busy endpoint.
    pub fn within(operation: Duration) -> Self {
        Self {
            operation,
            attempt: (operation / 3).max(operation.min(Duration::from_secs(1))),
        }
    }

    /// The API's: `API_AWS_TIMEOUT_MS` each, so a request's calls in a row
    /// end within the function's timeout ([`jobline_core::limits::API_SEQUENTIAL_CALLS`]).
    pub fn api(config: &Config) -> Self {
        Self::within(config.api_aws_timeout)
    }

    /// The worker's: three quarters of a heartbeat (at least a second), so
    /// a stalled claim, beat or completion ends before the next beat is due
    /// and the lease it protects can still be renewed.
    pub fn worker(config: &WorkerConfig) -> Self {
        let beat = Duration::from_secs(u64::from(config.heartbeat_secs.max(1)));
        Self::within((beat * 3 / 4).max(Duration::from_secs(1)))
    }

    /// The notifier's: a relay's send or a delivery's read and record, many
    /// to one invocation of
    /// [`NOTIFIER_TIMEOUT_SECS`](jobline_core::limits::NOTIFIER_TIMEOUT_SECS).
    pub fn notifier() -> Self {
        Self::within(Duration::from_secs(5))
    }

    /// The sweeper's: each query or write of a run that pages through
    /// every shard within its schedule's interval.
    pub fn sweeper() -> Self {
        Self::within(Duration::from_secs(10))
    }
}

/// For a Lambda function: region, credentials and endpoint from the
/// environment variables Lambda sets, HTTPS trusting `trust` (the functions
/// default to [`TrustRoots::AmazonTrustServices`]; [`TrustRoots::System`]
/// leaves the SDK's own client). No network call and no file read. A
/// function then bounds its calls ([`bounded`]).
pub fn lambda_sdk_config(trust: TrustRoots) -> SdkConfig {
    lambda_sdk_config_from(trust, |name| std::env::var(name).ok())
}

/// [`lambda_sdk_config`] with the variables read through `lookup`.
pub fn lambda_sdk_config_from(
    trust: TrustRoots,
    lookup: impl Fn(&str) -> Option<String>,
) -> SdkConfig {
    let var = |name: &str| lookup(name).filter(|value| !value.is_empty());
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(3_100))
                .build(),
        );
    builder.set_sleep_impl(default_async_sleep());
    builder.set_region(
        var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .map(Region::new),
    );
    if let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials =
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        builder.set_credentials_provider(Some(SharedCredentialsProvider::new(credentials)));
    }
    builder.set_endpoint_url(var("AWS_ENDPOINT_URL"));
    if trust == TrustRoots::AmazonTrustServices {
        builder.set_http_client(Some(amazon_https_client()));
    }
    builder.build()
}

/// `sdk` with every operation bounded by `timeouts` (the SDK's default has
/// no such bound: a call that hangs waits forever), keeping the other
/// timeouts (connect) as they were. Every client built from the result
/// inherits the bounds.
pub fn bounded(sdk: &SdkConfig, timeouts: AwsTimeouts) -> SdkConfig {
    let bounded = sdk
        .timeout_config()
        .map(TimeoutConfig::to_builder)
        .unwrap_or_default()
        .operation_timeout(timeouts.operation)
        .operation_attempt_timeout(timeouts.attempt)
        .build();
    sdk.to_builder().timeout_config(bounded).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::ProvideCredentials;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};
    use std::time::Duration;

    /// The SHA-256 fingerprints amazontrust.com publishes for its roots.
    #[test]
    fn the_built_in_roots_are_exactly_amazon_trust_services() {
        let fingerprints: Vec<String> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM)
            .map(|der| {
                Sha256::digest(der.expect("valid PEM").as_ref())
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root CA G2
            ]
        );
    }

    #[test]
    fn operation_timeout_bounds_every_call_and_keeps_the_connect_timeout() {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .build();
        let config = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .timeout_config(timeouts)
            .behavior_version(BehaviorVersion::latest())
            .build();
        let config = bounded(&config, AwsTimeouts::within(Duration::from_secs(3)));
        {
            let timeouts = config.timeout_config().expect("a timeout config");
            assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(3)));
            assert_eq!(
                timeouts.operation_attempt_timeout(),
                Some(Duration::from_secs(1))
            );
            assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(1)));
        }
    }

    /// Each function's bounds are shorter than what they protect: the API's
    /// calls in a row fit its timeout, the worker's end within a heartbeat.
    #[test]
    fn each_functions_calls_end_within_what_they_protect() {
        let config = Config::from_lookup(|name| {
            matches!(name, "JOBS_TABLE" | "JOBS_QUEUE_URL").then(|| "x".to_owned())
        })
        .unwrap();
        let api = AwsTimeouts::api(&config);
        assert!(
            api.operation * u32::try_from(jobline_core::limits::API_SEQUENTIAL_CALLS).unwrap()
                < Duration::from_secs(u64::from(jobline_core::limits::API_TIMEOUT_SECS))
        );
        for heartbeat_secs in [1, 10, 60] {
            let worker = AwsTimeouts::worker(&WorkerConfig {
                heartbeat_secs,
                ..WorkerConfig::default()
            });
            let beat = Duration::from_secs(u64::from(heartbeat_secs));
            assert!(worker.operation <= beat, "{worker:?} for a {beat:?} beat");
            assert!(worker.attempt <= worker.operation);
        }
        assert!(
            AwsTimeouts::notifier().operation
                < Duration::from_secs(u64::from(jobline_core::limits::NOTIFIER_TIMEOUT_SECS))
        );
    }

    #[tokio::test]
    async fn a_functions_config_comes_from_lambdas_environment_variables() {
        let env = |name: &str| {
            match name {
                "AWS_REGION" => Some("eu-west-1"),
                "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE"),
                "AWS_SECRET_ACCESS_KEY" => Some("secret"),
                "AWS_SESSION_TOKEN" => Some("token"),
                "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:5000"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let config = lambda_sdk_config_from(TrustRoots::AmazonTrustServices, env);
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(config.http_client().is_some(), "the built-in roots' client");
        assert!(config.sleep_impl().is_some(), "timeouts need a sleep");
        assert_eq!(config.retry_config(), Some(&RetryConfig::standard()));
        let credentials = config
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));

        // AWS_DEFAULT_REGION stands in; nothing else set, nothing made up.
        let bare = lambda_sdk_config_from(TrustRoots::System, |name| {
            (name == "AWS_DEFAULT_REGION").then(|| "us-east-1".to_owned())
        });
        assert_eq!(bare.region().map(|r| r.as_ref()), Some("us-east-1"));
        assert!(bare.credentials_provider().is_none());
        assert!(bare.endpoint_url().is_none());
        assert!(bare.http_client().is_none(), "the SDK's own client");
    }
}
