//! AWS SDK clients, loaded once per process.
//!
//! `aws_config` honours the standard `AWS_ENDPOINT_URL` (and the
//! per-service `AWS_ENDPOINT_URL_DYNAMODB`/`_SQS`), which is how the local
//! runner and the tests point Jobline at the moto emulator.
//!
//! [`SigningIdentity`] exposes the same credential chain for requests the SDK
//! does not make: the `jobline` CLI SigV4-signs its calls to an API whose
//! routes use IAM authorization.

use crate::config::Config;
use crate::error::CredentialsError;
use crate::queue::SqsJobQueue;
use crate::store::DynamoJobStore;
use aws_sdk_sqs::config::ProvideCredentials;

/// AWS credentials, as the SDK resolves them.
pub use aws_sdk_sqs::config::Credentials;

/// The SDK clients a Jobline process needs.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl Clients {
    /// Loads credentials, region and endpoints from the environment. It
    /// makes no network call: credentials resolve lazily on first use.
    pub async fn from_env() -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&shared),
            sqs: aws_sdk_sqs::Client::new(&shared),
        }
    }

    /// The job store on the configured table.
    pub fn store(&self, config: &Config) -> DynamoJobStore {
        DynamoJobStore::new(self.dynamodb.clone(), &config.table_name)
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
