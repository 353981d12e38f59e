//! The AWS SDK set-up every adapter shares, loaded once per process. This
//! crate builds no service client: each adapter crate (`adapters/`) builds
//! its own from the [`SdkConfig`] made here, so a function links only the
//! SDKs it calls.
//!
//! `aws_config` honours the standard `AWS_ENDPOINT_URL` (and the
//! per-service `AWS_ENDPOINT_URL_DYNAMODB`/`_SQS`), which is how the local
//! runner and the tests point Jobline at the moto emulator.
//!
//! The Lambda functions build their clients with [`lambda_sdk_config`],
//! which keeps their init short (init time is billed; BENCHMARKS.md):
//! - credentials and region come straight from the environment variables
//!   Lambda always sets, so the SDK builds no default provider chain (which
//!   reads profile files and constructs an STS client);
//! - HTTPS trusts only the Amazon Trust Services roots built into the binary
//!   ([`TrustRoots`]): the SDK's default client reads and parses the
//!   operating system's whole CA store while the clients are built, which
//!   was two thirds of the functions' init time over a hello-world binary.
//!   Their only HTTPS peers are AWS endpoints, whose certificates all chain
//!   to those roots.
//!
//! Tools run by people use [`tools_sdk_config`]: the SDK's default chains
//! (profiles, SSO) and the system's CA store, which may hold a corporate
//! proxy's CA.
//!
//! [`SigningIdentity`] exposes the same credential chain for requests the SDK
//! does not make: the `jobline` CLI SigV4-signs its calls to an API whose
//! routes use IAM authorization.

use aws_config::SdkConfig;
use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
pub use jobline_core::config::TrustRoots;
use jobline_core::config::{Config, WorkerConfig};
use std::time::Duration;

/// AWS credentials, as the SDK resolves them.
pub use aws_credential_types::Credentials;

/// A boxed source error.
pub type BoxError = jobline_core::error::BoxError;

/// An SDK error with its whole chain in its message (an `SdkError` alone
/// displays as just "service error").
pub fn sdk_error(error: impl std::error::Error + 'static) -> BoxError {
    aws_smithy_types::error::display::DisplayErrorContext(error)
        .to_string()
        .into()
}

/// Errors resolving credentials for a request signed outside the SDK.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("no AWS region is configured: set AWS_REGION or a profile's region")]
    NoRegion,
    #[error("no AWS credentials provider is configured")]
    NoProvider,
    #[error("AWS credentials could not be loaded: {0}")]
    Unavailable(#[source] BoxError),
}

/// The root certificates of Amazon Trust Services (Amazon Root CA 1 to 4 and
/// Starfield Services Root CA G2), PEM-encoded.
const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Gives `loader` an HTTPS client that trusts `roots`.
fn trusting(roots: TrustRoots, loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    match roots {
        TrustRoots::System => loader,
        TrustRoots::AmazonTrustServices => {
            let trust_store = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM);
            let tls_context = TlsContext::builder()
                .with_trust_store(trust_store)
                .build()
                .expect("a TLS context with only a trust store always builds");
            loader.http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                    .tls_context(tls_context)
                    .build_https(),
            )
        }
    }
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

/// For a Lambda function: credentials and region from the environment
/// variables Lambda sets, HTTPS trusting `trust` (the functions default to
/// [`TrustRoots::AmazonTrustServices`]). Endpoints still honour
/// `AWS_ENDPOINT_URL`. No network call and no file read for credentials.
/// A function then bounds its calls ([`bounded`]).
pub async fn lambda_sdk_config(trust: TrustRoots) -> SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .region(EnvironmentVariableRegionProvider::new());
    trusting(trust, loader).load().await
}

/// For tools run by people: the SDK's default credential and region chains
/// and the system's CA store. It makes no network call: credentials resolve
/// lazily on first use.
pub async fn tools_sdk_config() -> SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
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

/// Credentials and region for SigV4-signing a request that is not an SDK
/// call, such as one to an API Gateway route with IAM authorization.
#[derive(Debug, Clone)]
pub struct SigningIdentity {
    pub credentials: Credentials,
    pub region: String,
}

impl SigningIdentity {
    /// Resolves the default credential chain (environment, profile, SSO,
    /// container or instance role; this may call STS or SSO) and the region.
    pub async fn from_env() -> Result<Self, CredentialsError> {
        Self::from_sdk_config(
            &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        )
        .await
    }

    async fn from_sdk_config(config: &SdkConfig) -> Result<Self, CredentialsError> {
        let region = config
            .region()
            .ok_or(CredentialsError::NoRegion)?
            .to_string();
        let provider = config
            .credentials_provider()
            .ok_or(CredentialsError::NoProvider)?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| CredentialsError::Unavailable(e.into()))?;
        Ok(Self {
            credentials,
            region,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::{Region, SdkConfig};
    use aws_credential_types::provider::SharedCredentialsProvider;
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
            .behavior_version(aws_config::BehaviorVersion::latest())
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
    async fn signing_identity_comes_from_the_sdk_config() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let config = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build();
        let identity = SigningIdentity::from_sdk_config(&config).await.unwrap();
        assert_eq!(identity.region, "eu-west-1");
        assert_eq!(identity.credentials.access_key_id(), "AKIDEXAMPLE");

        let no_region = SdkConfig::builder().build();
        assert!(matches!(
            SigningIdentity::from_sdk_config(&no_region).await,
            Err(CredentialsError::NoRegion)
        ));
        let no_credentials = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .build();
        assert!(matches!(
            SigningIdentity::from_sdk_config(&no_credentials).await,
            Err(CredentialsError::NoProvider)
        ));
    }
}
