//! SigV4 signing of API requests, for a deployment whose routes use IAM
//! authorization: API Gateway checks a signature for the service name
//! `execute-api`, made with the caller's AWS credentials and the API's region.
//!
//! The credentials come from [`SigningIdentity`] in `jobline-shared` (the
//! crate that owns every AWS connection); this module only computes the
//! signature, with the `aws-sigv4` crate the SDK itself signs with.

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use hyper::body::Bytes;
use jobline_aws::SigningIdentity;
use std::time::SystemTime;

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
    use jobline_aws::Credentials;
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
}
