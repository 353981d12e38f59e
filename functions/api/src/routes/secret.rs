//! `GET /webhook-secret`: the caller's own webhook signing secret, derived
//! from the master key.

use crate::error::ApiError;
use crate::identity::caller;
use crate::{Api, fresh_json};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

impl Api {
    /// `GET /webhook-secret`: the caller's own signing secret, with which it
    /// verifies the events of its jobs (and no one else's).
    pub(crate) async fn webhook_secret(
        &self,
        request: &Request,
    ) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let keys = self
            .webhook_keys
            .as_ref()
            .ok_or(ApiError::WebhooksDisabled)?
            .keys()
            .await
            .map_err(|e| ApiError::SecretUnavailable(e.to_string()))?;
        let body = json!({ "secret": keys.caller_secret(&owner).to_whsec() });
        fresh_json(StatusCode::OK)
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }
}
