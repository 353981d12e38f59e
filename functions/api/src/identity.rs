//! Who is calling: the owner of the jobs a request creates and may see.
//!
//! API Gateway authenticates the caller before the function runs (IAM or a
//! JWT authorizer, chosen in `template.yaml`) and passes the identity in the
//! request context. A request with no authorizer context (the local server,
//! or an API deployed without auth) belongs to [`ANONYMOUS_OWNER`].

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The owner of requests that carry no identity.
pub const ANONYMOUS_OWNER: &str = "anonymous";

/// The caller's identity: `jwt:<iss>|<sub>` for a JWT, `iam:<caller ARN>`
/// for IAM, else [`ANONYMOUS_OWNER`].
pub fn caller(request: &Request) -> String {
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return ANONYMOUS_OWNER.to_owned();
    };
    let Some(authorizer) = &context.authorizer else {
        return ANONYMOUS_OWNER.to_owned();
    };
    if let Some(sub) = authorizer
        .jwt
        .as_ref()
        .and_then(|jwt| jwt.claims.get("sub"))
    {
        let issuer = authorizer
            .jwt
            .as_ref()
            .and_then(|jwt| jwt.claims.get("iss"))
            .map_or("", String::as_str);
        return format!("jwt:{issuer}|{sub}");
    }
    if let Some(arn) = authorizer
        .iam
        .as_ref()
        .and_then(|iam| iam.user_arn.as_ref())
    {
        return format!("iam:{arn}");
    }
    ANONYMOUS_OWNER.to_owned()
}
