//! `GET /openapi.yaml`: the API's OpenAPI 3.1 document (`docs/openapi.yaml`),
//! embedded at build time so the function serves the document of the code it
//! runs. It reads no store and names no caller: locally anyone may read it;
//! deployed, API Gateway's authorizer guards its route as every other.
//!
//! `tests/tests/openapi.rs` keeps the document's routes equal to
//! `template.yaml`'s and to what the router answers; `scripts/check-openapi`
//! fuzzes a local server against it.

use crate::ApiError;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, StatusCode};
use lambda_http::{Body, Response};

/// The document, as `docs/openapi.yaml` holds it.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.yaml");

/// Its media type (RFC 9512).
pub const CONTENT_TYPE_YAML: &str = "application/yaml";

/// A client may keep it for five minutes (it changes only with a
/// deployment); `private`, as deployed it answers authorized requests only,
/// which no shared cache should serve to others.
const CACHE: &str = "private, max-age=300";

/// `GET`: 200 with the document; any other method: 405, `Allow: GET`.
pub fn answer(method: &Method) -> Result<Response<Body>, ApiError> {
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed { allow: "GET" });
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, CONTENT_TYPE_YAML)
        .header(CACHE_CONTROL, CACHE)
        .body(Body::from(DOCUMENT))
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_document_as_yaml() {
        let response = answer(&Method::GET).unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], CONTENT_TYPE_YAML);
        assert_eq!(response.body().as_ref(), DOCUMENT.as_bytes());
        assert!(
            DOCUMENT.starts_with("openapi: 3.1."),
            "an OpenAPI 3.1 document"
        );
    }

    #[test]
    fn other_methods_are_not_allowed() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::HEAD] {
            let error = answer(&method).unwrap_err();
            assert_eq!(error.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            let response = error.into_response();
            assert_eq!(response.headers()[http::header::ALLOW], "GET");
        }
    }
}
