//! `GET /jobs`: the caller's jobs, newest first, in bounded pages
//! (`listing.rs` reads the query).

use crate::error::ApiError;
use crate::identity::caller;
use crate::{Api, expired, fresh_json, listing};
use http::StatusCode;
use jobline_core::view::job_summary;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

impl Api {
    /// `GET /jobs`: one page of the caller's jobs, newest first (see
    /// [`listing`]).
    pub(crate) async fn list(&self, request: &Request) -> Result<Response<Body>, ApiError> {
        let owner = caller(request, self.allow_anonymous, self.assumed_role_owner)?;
        let query = listing::Query::parse(request.uri().query().unwrap_or_default(), &owner)?;
        let page = self.store.list(&owner, query.after, query.limit).await?;
        let now_ms = self.clock.now_ms();
        let jobs: Vec<Value> = page
            .jobs
            .iter()
            .filter(|job| !expired(job, now_ms) && query.matches(job, now_ms))
            .map(|job| job_summary(job, now_ms))
            .collect();
        let body = json!({
            "jobs": jobs,
            "nextCursor": page.next.map(|next| listing::cursor(next, &owner)),
        });
        fresh_json(StatusCode::OK)
            .body(Body::from(body.to_string()))
            .map_err(ApiError::internal)
    }
}
