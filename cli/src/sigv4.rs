//! SigV4 signing of API requests, for a deployment whose routes use IAM
//! authorization: API Gateway checks a signature for the service name
//! `execute-api`, made with the caller's AWS credentials and the API's region.
//!
//! The credentials come from [`SigningIdentity`]: the SDK's default
//! credential chain (`aws-config`), as the other AWS tools resolve it; the
//! signature is computed with the `aws-sigv4` crate the SDK itself signs
//! with.

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use hyper::body::Bytes;
use std::time::SystemTime;

/// AWS credentials, as the SDK resolves them.
pub use aws_credential_types::Credentials;

/// A boxed source error.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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

/// Credentials and region for SigV4-signing a request that is not an SDK
/// call, such as one to an API Gateway route with IAM authorization.
#[derive(Debug, Clone)]
pub struct SigningIdentity {
    pub credentials: Credentials,
    pub region: String,
}

impl SigningIdentity {
    /// Resolves the credentials and region of `config` (for the CLI, the
    /// default chain: environment, profile, SSO, container or instance role;
    /// this may call STS or SSO).
    pub async fn from_sdk_config(config: &SdkConfig) -> Result<Self, CredentialsError> {
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

/// The service name API Gateway checks signatures for.
pub const SERVICE: &str = "execute-api";

/// A signature could not be computed.
#[derive(Debug, thiserror::Error)]
#[error("SigV4 signing failed: {0}")]
pub struct SigningError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// Signs requests with one set of credentials.
#[derive(Debug, Clone)]
pub struct Signer {
    identity: SigningIdentity,
}

impl Signer {
    pub fn new(identity: SigningIdentity) -> Self {
        Self { identity }
    }

    /// Adds `Authorization`, `X-Amz-Date` (and `X-Amz-Security-Token` for
    /// temporary credentials) for a request sent at `at`. Sign last: headers
    /// added afterwards are not covered.
    pub fn sign(
        &self,
        request: &mut http::Request<Bytes>,
        at: SystemTime,
    ) -> Result<(), SigningError> {
        let identity = self.identity.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.identity.region)
            .name(SERVICE)
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SigningError(e.into()))?
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
        .map_err(|e| SigningError(e.into()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SigningError(e.into()))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2015-08-30T12:36:00Z, the date of AWS's SigV4 test suite.
    const AT_SECS: u64 = 1_440_938_160;

    fn signed(session_token: Option<&str>, body: &'static [u8]) -> http::Request<Bytes> {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        );
        let signer = Signer::new(SigningIdentity {
            credentials,
            region: "eu-west-1".into(),
        });
        let mut request =
            http::Request::post("https://abc123.execute-api.eu-west-1.amazonaws.com/prod/jobs")
                .header("content-type", "application/json")
                .body(Bytes::from_static(body))
                .unwrap();
        signer
            .sign(&mut request, UNIX_EPOCH + Duration::from_secs(AT_SECS))
            .unwrap();
        request
    }

    fn authorization(request: &http::Request<Bytes>) -> &str {
        request.headers()["authorization"].to_str().unwrap()
    }

    #[test]
    fn signs_for_execute_api_in_the_configured_region() {
        let request = signed(None, b"{}");
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

    #[test]
    fn the_signature_covers_the_body() {
        let a = signed(None, b"{}");
        let b = signed(None, br#"{"type":"primes"}"#);
        assert_eq!(authorization(&a), authorization(&signed(None, b"{}")));
        assert_ne!(authorization(&a), authorization(&b));
    }

    #[test]
    fn temporary_credentials_send_their_session_token() {
        let request = signed(Some("session-token"), b"{}");
        assert_eq!(request.headers()["x-amz-security-token"], "session-token");
    }

    #[tokio::test]
    async fn signing_identity_comes_from_the_sdk_config() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let config = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
            )
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
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        assert!(matches!(
            SigningIdentity::from_sdk_config(&no_credentials).await,
            Err(CredentialsError::NoProvider)
        ));
    }
}
