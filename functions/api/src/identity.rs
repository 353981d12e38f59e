//! Who is calling: the owner of the jobs a request creates and may see.
//!
//! API Gateway authenticates the caller before the function runs (IAM or a
//! JWT authorizer, chosen in `template.yaml`) and passes the identity in the
//! request context. The owner is:
//!
//! - JWT: `jwt:<iss>|<sub>`, the token's subject at its issuer.
//! - IAM through a Cognito identity pool: `cognito:<identityId>`, the
//!   caller's own identity in the pool. Every user of a pool gets
//!   credentials of the same role, with the same session name
//!   (`CognitoIdentityCredentials`), so the ARN would pool them all; the
//!   identity id (`requestContext.authorizer.iam.cognitoIdentity`, set by API
//!   Gateway, not the client) is the one thing that tells them apart. Its own
//!   prefix keeps it from ever equalling an IAM principal's owner.
//! - IAM otherwise: `iam:<principal>`, where the principal is chosen so that
//!   one person or service keeps its jobs across credential rotation, and two
//!   people never share them:
//!   - an assumed role (`arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`) is, by
//!     default ([`AssumedRoleOwner::Role`]), the role,
//!     `arn:aws:iam::ACCT:role/ROLE`: the session name is chosen anew by
//!     whoever assumes the role (a random one by most SDKs), while the role
//!     is the service. A Lambda function's session name is its own name.
//!     Where callers share a role but must not share jobs, and choose stable
//!     session names, `ASSUMED_ROLE_OWNER=session`
//!     ([`AssumedRoleOwner::Session`]) keeps the whole session ARN instead;
//!     the setting's documentation says what becomes of existing jobs and
//!     idempotency keys when it changes;
//!   - except IAM Identity Center roles (`AWSReservedSSO_*`), which every user
//!     of a permission set shares: there the session name is the person, so
//!     the owner keeps the whole `assumed-role/ROLE/SESSION` ARN whatever the
//!     setting;
//!   - an IAM user (`arn:aws:iam::ACCT:user/PATH/NAME`), the account's root
//!     (`arn:aws:iam::ACCT:root`) and a federated user
//!     (`arn:aws:sts::ACCT:federated-user/NAME`) are their ARN as is.
//!
//! A request behind an authorizer that carries neither a JWT subject nor an
//! IAM caller is refused (401). A request with no authorizer context at all
//! (the local server, or an API deployed without auth) belongs to
//! [`ANONYMOUS_OWNER`] only where `ALLOW_ANONYMOUS` is set; elsewhere it too
//! is 401, so a misconfigured deployment never pools everyone's jobs.

use crate::ApiError;
use jobline_core::config::AssumedRoleOwner;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The owner of requests that carry no identity, where that is allowed.
pub const ANONYMOUS_OWNER: &str = "anonymous";

/// The role name prefix of IAM Identity Center permission sets.
const SSO_ROLE_PREFIX: &str = "AWSReservedSSO_";

/// The caller's identity (see the module doc), or `Unauthenticated`;
/// `assumed_role` is the deployment's `ASSUMED_ROLE_OWNER`.
pub fn caller(
    request: &Request,
    allow_anonymous: bool,
    assumed_role: AssumedRoleOwner,
) -> Result<String, ApiError> {
    let authorizer = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.authorizer.as_ref(),
        _ => None,
    };
    let Some(authorizer) = authorizer else {
        return if allow_anonymous {
            Ok(ANONYMOUS_OWNER.to_owned())
        } else {
            Err(ApiError::Unauthenticated)
        };
    };
    if let Some(jwt) = &authorizer.jwt {
        if let Some(sub) = jwt.claims.get("sub").filter(|sub| !sub.is_empty()) {
            let issuer = jwt.claims.get("iss").map_or("", String::as_str);
            return Ok(format!("jwt:{issuer}|{sub}"));
        }
    }
    let iam = authorizer.iam.as_ref().ok_or(ApiError::Unauthenticated)?;
    if let Some(identity) = iam
        .cognito_identity
        .as_ref()
        .and_then(|cognito| cognito.identity_id.as_deref())
        .filter(|id| !id.is_empty())
    {
        return Ok(format!("cognito:{identity}"));
    }
    iam.user_arn
        .as_deref()
        .filter(|arn| !arn.is_empty())
        .map(|arn| format!("iam:{}", iam_principal(arn, assumed_role)))
        .ok_or(ApiError::Unauthenticated)
}

/// The principal an IAM caller ARN stands for: an assumed role's role
/// (under [`AssumedRoleOwner::Role`]), except for Identity Center roles; any
/// other ARN as is.
fn iam_principal(arn: &str, assumed_role: AssumedRoleOwner) -> String {
    if assumed_role == AssumedRoleOwner::Session {
        return arn.to_owned();
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if let ["arn", partition, "sts", "", account, resource] = parts.as_slice() {
        if let Some((role, _session)) = resource
            .strip_prefix("assumed-role/")
            .and_then(|rest| rest.split_once('/'))
        {
            if !role.starts_with(SSO_ROLE_PREFIX) {
                return format!("arn:{partition}:iam::{account}:role/{role}");
            }
        }
    }
    arn.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerCognitoIdentity,
        ApiGatewayRequestAuthorizerIamDescription, ApiGatewayRequestAuthorizerJwtDescription,
        ApiGatewayV2httpRequestContext,
    };

    const ROLE: AssumedRoleOwner = AssumedRoleOwner::Role;

    fn request(authorizer: Option<ApiGatewayRequestAuthorizer>) -> Request {
        let mut request = Request::new(Body::Empty);
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.authorizer = authorizer;
        request
            .extensions_mut()
            .insert(RequestContext::ApiGatewayV2(context));
        request
    }

    fn iam(user_arn: &str) -> Request {
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        iam.user_arn = Some(user_arn.to_owned());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.iam = Some(iam);
        request(Some(authorizer))
    }

    #[test]
    fn iam_owners_follow_the_principal_kind() {
        let cases = [
            // A service's role: the session name changes, the owner does not.
            (
                "arn:aws:sts::123456789012:assumed-role/report-builder/botocore-session-1732871234",
                "iam:arn:aws:iam::123456789012:role/report-builder",
            ),
            (
                "arn:aws:sts::123456789012:assumed-role/report-builder/i-0abcd1234ef567890",
                "iam:arn:aws:iam::123456789012:role/report-builder",
            ),
            // A Lambda function's session is its function name.
            (
                "arn:aws-cn:sts::123456789012:assumed-role/fn-role-1A2B3C/my-function",
                "iam:arn:aws-cn:iam::123456789012:role/fn-role-1A2B3C",
            ),
            // Identity Center: one role per permission set, the session is the person.
            (
                "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/jane@example.com",
                "iam:arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/jane@example.com",
            ),
            (
                "arn:aws:iam::123456789012:user/division_abc/subdivision_xyz/JaneDoe",
                "iam:arn:aws:iam::123456789012:user/division_abc/subdivision_xyz/JaneDoe",
            ),
            (
                "arn:aws:iam::123456789012:root",
                "iam:arn:aws:iam::123456789012:root",
            ),
            (
                "arn:aws:sts::123456789012:federated-user/Bob",
                "iam:arn:aws:sts::123456789012:federated-user/Bob",
            ),
        ];
        for (arn, owner) in cases {
            assert_eq!(caller(&iam(arn), false, ROLE).unwrap(), owner, "{arn}");
        }
        let jane =
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123456789abcdef/jane";
        let john =
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123456789abcdef/john";
        assert_ne!(
            caller(&iam(jane), false, ROLE).unwrap(),
            caller(&iam(john), false, ROLE).unwrap(),
            "two people of one permission set never share jobs"
        );
    }

    /// A caller with Cognito identity pool credentials: the pool's role,
    /// its fixed session name, and the caller's identity id.
    fn cognito(identity_id: Option<&str>) -> Request {
        let mut cognito = ApiGatewayRequestAuthorizerCognitoIdentity::default();
        cognito.amr = vec!["authenticated".into()];
        cognito.identity_id = identity_id.map(str::to_owned);
        cognito.identity_pool_id = Some("us-east-1:11111111-2222-3333-4444-555555555555".into());
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        iam.user_arn = Some(
            "arn:aws:sts::123456789012:assumed-role/Cognito_JoblineAuth_Role/CognitoIdentityCredentials"
                .into(),
        );
        iam.cognito_identity = Some(cognito);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.iam = Some(iam);
        request(Some(authorizer))
    }

    #[test]
    fn each_cognito_identity_pool_user_is_its_own_owner() {
        let alice = "us-east-1:0c1f5d2a-aaaa-4bbb-8ccc-0123456789ab";
        let bob = "us-east-1:9e8d7c6b-dddd-4eee-8fff-ba9876543210";
        for assumed_role in [AssumedRoleOwner::Role, AssumedRoleOwner::Session] {
            assert_eq!(
                caller(&cognito(Some(alice)), false, assumed_role).unwrap(),
                format!("cognito:{alice}")
            );
            assert_ne!(
                caller(&cognito(Some(alice)), false, assumed_role).unwrap(),
                caller(&cognito(Some(bob)), false, assumed_role).unwrap(),
                "two users of one pool role never share jobs"
            );
        }
        // No identity id: the IAM principal, as before.
        assert_eq!(
            caller(&cognito(None), false, ROLE).unwrap(),
            "iam:arn:aws:iam::123456789012:role/Cognito_JoblineAuth_Role"
        );
        assert_eq!(
            caller(&cognito(Some("")), false, ROLE).unwrap(),
            "iam:arn:aws:iam::123456789012:role/Cognito_JoblineAuth_Role"
        );
    }

    #[test]
    fn assumed_role_sessions_are_owners_where_the_deployment_says_so() {
        let session = AssumedRoleOwner::Session;
        let a = "arn:aws:sts::123456789012:assumed-role/reports/team-a";
        let b = "arn:aws:sts::123456789012:assumed-role/reports/team-b";
        assert_eq!(caller(&iam(a), false, session).unwrap(), format!("iam:{a}"));
        assert_ne!(
            caller(&iam(a), false, session).unwrap(),
            caller(&iam(b), false, session).unwrap()
        );
        // The default keeps today's owner: the role, for both sessions.
        assert_eq!(
            caller(&iam(a), false, ROLE).unwrap(),
            caller(&iam(b), false, ROLE).unwrap()
        );
        // Principals that are not assumed roles are the same either way.
        for arn in [
            "arn:aws:iam::123456789012:user/JaneDoe",
            "arn:aws:iam::123456789012:root",
            "arn:aws:sts::123456789012:federated-user/Bob",
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_0123456789abcdef/jane",
        ] {
            assert_eq!(
                caller(&iam(arn), false, session).unwrap(),
                caller(&iam(arn), false, ROLE).unwrap(),
                "{arn}"
            );
        }
    }

    #[test]
    fn a_jwt_owner_is_issuer_and_subject() {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims.insert("sub".into(), "user-123".into());
        jwt.claims
            .insert("iss".into(), "https://issuer.example.com/".into());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        assert_eq!(
            caller(&request(Some(authorizer)), false, ROLE).unwrap(),
            "jwt:https://issuer.example.com/|user-123"
        );
    }

    #[test]
    fn no_identity_is_anonymous_only_where_allowed() {
        // Behind an authorizer, with neither a subject nor an IAM caller.
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims
            .insert("iss".into(), "https://issuer.example.com/".into());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        let empty = request(Some(authorizer));
        for allow in [false, true] {
            assert!(matches!(
                caller(&empty, allow, ROLE),
                Err(ApiError::Unauthenticated)
            ));
        }
        // No authorizer context, and no request context at all.
        for bare in [request(None), Request::new(Body::Empty)] {
            assert!(matches!(
                caller(&bare, false, ROLE),
                Err(ApiError::Unauthenticated)
            ));
            assert_eq!(caller(&bare, true, ROLE).unwrap(), ANONYMOUS_OWNER);
        }
    }
}
