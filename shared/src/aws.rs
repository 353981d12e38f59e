//! AWS SDK clients, loaded once per process.
//!
//! `aws_config` honours the standard `AWS_ENDPOINT_URL` (and the
//! per-service `AWS_ENDPOINT_URL_DYNAMODB`/`_SQS`), which is how the local
//! runner and the tests point Jobline at the moto emulator.
//!
//! The Lambda functions build their clients with [`Clients::for_lambda`],
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
//! Tools run by people use [`Clients::from_env`]: the SDK's default chains
//! (profiles, SSO) and the system's CA store, which may hold a corporate
//! proxy's CA.
//!
//! [`SigningIdentity`] exposes the same credential chain for requests the SDK
//! does not make: the `jobline` CLI SigV4-signs its calls to an API whose
//! routes use IAM authorization.

pub use crate::config::TrustRoots;
use crate::config::{Config, WorkerConfig};
use crate::deadline::Deadlines;
use crate::error::CredentialsError;
use crate::provision::QueueSettings;
use crate::queue::SqsJobQueue;
use crate::results::S3ResultStore;
use crate::store::DynamoJobStore;
use crate::webhook::SecretsManagerKeys;
use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_sdk_sqs::config::ProvideCredentials;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use std::time::Duration;

/// AWS credentials, as the SDK resolves them.
pub use aws_sdk_sqs::config::Credentials;

/// The root certificates of Amazon Trust Services (Amazon Root CA 1 to 4 and
/// Starfield Services Root CA G2), PEM-encoded.
const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

impl TrustRoots {
    /// Gives `loader` an HTTPS client that trusts these roots.
    fn configure(self, loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
        match self {
            Self::System => loader,
            Self::AmazonTrustServices => {
                let trust_store =
                    TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM);
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
    /// end within the function's timeout ([`crate::config::API_SEQUENTIAL_CALLS`]).
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
    /// [`NOTIFIER_TIMEOUT_SECS`](crate::provision::NOTIFIER_TIMEOUT_SECS).
    pub fn notifier() -> Self {
        Self::within(Duration::from_secs(5))
    }

    /// The sweeper's: each query or write of a run that pages through
    /// every shard within its schedule's interval.
    pub fn sweeper() -> Self {
        Self::within(Duration::from_secs(10))
    }
}

/// The SDK clients a Jobline process needs.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// The jobs table's stream, which only the local runner reads itself.
    pub streams: aws_sdk_dynamodbstreams::Client,
}

impl Clients {
    /// For a Lambda function: credentials and region from the environment
    /// variables Lambda sets, HTTPS trusting `trust` (the functions default
    /// to [`TrustRoots::AmazonTrustServices`]). Endpoints still honour
    /// `AWS_ENDPOINT_URL`. No network call and no file read for credentials.
    pub async fn for_lambda(trust: TrustRoots) -> Self {
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .credentials_provider(EnvironmentVariableCredentialsProvider::new())
            .region(EnvironmentVariableRegionProvider::new());
        Self::from_sdk_config(&trust.configure(loader).load().await)
    }

    /// For tools: the SDK's default credential and region chains and the
    /// system's CA store. It makes no network call: credentials resolve
    /// lazily on first use.
    pub async fn from_env() -> Self {
        Self::from_sdk_config(
            &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
        )
    }

    /// Clients sharing `shared`, for a caller that sets the SDK up itself.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig) -> Self {
        // An endpoint of our own (moto) serves buckets by path, not by host.
        let s3 = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(shared.endpoint_url().is_some())
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(shared),
            sqs: aws_sdk_sqs::Client::new(shared),
            s3: aws_sdk_s3::Client::from_conf(s3),
            secrets: aws_sdk_secretsmanager::Client::new(shared),
            streams: aws_sdk_dynamodbstreams::Client::new(shared),
        }
    }

    /// These clients with every operation bounded by `timeouts` (the SDK's
    /// default has no such bound: a call that hangs waits forever), keeping
    /// the other timeouts (connect) as they were.
    pub fn with_timeouts(self, timeouts: AwsTimeouts) -> Self {
        let bounded = |current: Option<&TimeoutConfig>| {
            current
                .map(TimeoutConfig::to_builder)
                .unwrap_or_default()
                .operation_timeout(timeouts.operation)
                .operation_attempt_timeout(timeouts.attempt)
                .build()
        };
        let dynamodb = self.dynamodb.config();
        let sqs = self.sqs.config();
        let s3 = self.s3.config();
        let secrets = self.secrets.config();
        let streams = self.streams.config();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                dynamodb
                    .to_builder()
                    .timeout_config(bounded(dynamodb.timeout_config()))
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                sqs.to_builder()
                    .timeout_config(bounded(sqs.timeout_config()))
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(
                s3.to_builder()
                    .timeout_config(bounded(s3.timeout_config()))
                    .build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::from_conf(
                secrets
                    .to_builder()
                    .timeout_config(bounded(secrets.timeout_config()))
                    .build(),
            ),
            streams: aws_sdk_dynamodbstreams::Client::from_conf(
                streams
                    .to_builder()
                    .timeout_config(bounded(streams.timeout_config()))
                    .build(),
            ),
        }
    }

    /// The job store on the configured table, with the configured retention
    /// and time bounds.
    pub fn store(&self, config: &Config) -> DynamoJobStore {
        DynamoJobStore::new(self.dynamodb.clone(), &config.table_name)
            .with_retention_days(config.retention_days)
            .with_deadlines(Deadlines::new(
                QueueSettings::for_worker_timeout(config.worker.function_timeout_secs),
                &config.worker,
            ))
    }

    /// The store of large results, if `RESULTS_BUCKET` names a bucket.
    pub fn results(&self, config: &Config) -> Option<S3ResultStore> {
        config
            .results_bucket
            .as_ref()
            .map(|bucket| S3ResultStore::new(self.s3.clone(), bucket))
    }

    /// The webhook master keys, if `WEBHOOK_SECRET_ID` names their secret.
    pub fn webhook_keys(&self, config: &Config) -> Option<SecretsManagerKeys> {
        config
            .webhooks
            .secret_id
            .as_ref()
            .map(|id| SecretsManagerKeys::new(self.secrets.clone(), id))
    }

    /// The configured job queue.
    pub fn queue(&self, config: &Config) -> SqsJobQueue {
        SqsJobQueue::new(self.sqs.clone(), &config.queue_url)
    }
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

    async fn from_sdk_config(config: &aws_config::SdkConfig) -> Result<Self, CredentialsError> {
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
    use aws_sdk_sqs::config::SharedCredentialsProvider;
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
    fn operation_timeout_bounds_both_clients_and_keeps_the_connect_timeout() {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(1))
            .build();
        let config = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .timeout_config(timeouts)
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let clients = Clients::from_sdk_config(&config)
            .with_timeouts(AwsTimeouts::within(Duration::from_secs(3)));
        for timeouts in [
            clients.dynamodb.config().timeout_config(),
            clients.sqs.config().timeout_config(),
            clients.s3.config().timeout_config(),
            clients.secrets.config().timeout_config(),
            clients.streams.config().timeout_config(),
        ] {
            let timeouts = timeouts.expect("a timeout config");
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
            api.operation * u32::try_from(crate::config::API_SEQUENTIAL_CALLS).unwrap()
                < Duration::from_secs(u64::from(crate::provision::API_TIMEOUT_SECS))
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
                < Duration::from_secs(u64::from(crate::provision::NOTIFIER_TIMEOUT_SECS))
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
