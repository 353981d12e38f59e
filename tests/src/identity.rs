//! Requests as API Gateway passes them on after its authorizer let a caller
//! through: the identity the API reads its caller from.

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequestContext,
};
use lambda_http::Request;
use lambda_http::request::RequestContext;

/// `request` as API Gateway passes it on after `authorizer` let it through.
pub fn authorized(mut request: Request, authorizer: ApiGatewayRequestAuthorizer) -> Request {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer);
    request
        .extensions_mut()
        .insert(RequestContext::ApiGatewayV2(context));
    request
}

/// `request` as sent by the JWT user `sub`.
pub fn as_user(request: Request, sub: &str) -> Request {
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims.insert("sub".into(), sub.into());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    authorized(request, authorizer)
}

/// `request` as signed (SigV4) by the IAM caller `user_arn`.
pub fn as_iam(request: Request, user_arn: &str) -> Request {
    let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
    iam.user_arn = Some(user_arn.into());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.iam = Some(iam);
    authorized(request, authorizer)
}

/// `method path` with a JSON `body`, as the JWT user `sub` sends it.
pub fn request_as(
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    sub: &str,
) -> Request {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or(lambda_http::Body::Empty, |b| {
            lambda_http::Body::from(b.to_string())
        }))
        .expect("a request");
    as_user(request, sub)
}
