//! Webhook callbacks: the building blocks with which Jobline POSTs a JSON
//! event to a caller's callback URL when its job reaches a final state.
//!
//! - [`signing`]: the events are signed as the Standard Webhooks
//!   specification says (<https://www.standardwebhooks.com/>), so that a
//!   receiver verifies them with any of its libraries: the `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature` headers, `whsec_` secrets,
//!   several signatures during a rotation, and each caller's own secret
//!   derived from one master secret ([`caller_secret`]), so that no caller
//!   can forge another's events.
//! - [`target`]: the guard against server-side request forgery. A callback
//!   URL must be https to a public address: its host is resolved once, every
//!   address it resolves to is checked (private, loopback, link-local with
//!   the instance metadata and container credentials endpoints, carrier-grade
//!   NAT, multicast, IPv6 forms that carry one of those IPv4 addresses...),
//!   and the address checked is the one connected to. Resolving again to
//!   connect would leave a window for DNS rebinding, a second answer that
//!   points elsewhere; there is none.
//! - [`deliver`]: one attempt, over TLS to that address with the URL's host
//!   as the server name, trusting the public web's roots (receivers are the
//!   callers' servers, not AWS), within a short timeout, without following
//!   redirects; each failure says whether it is worth retrying.
//!
//! The notifier (issue 13, part 2) calls, for an event of a final job:
//! [`CallbackUrl::parse`] when the job is submitted (to refuse a bad URL at
//! once), then for each attempt [`WebhookHeaders::signed`] with
//! [`caller_secret`]`(master, owner)` (and the previous master's during a
//! rotation) and [`Deliverer::deliver`], retrying while
//! [`DeliveryError::is_retryable`], and after a 401 or 403 when the keys
//! read again ([`KeySource::reread`]) show a rotation it had not seen.
//! `scripts/check-webhooks` checks the signatures with the reference Python
//! library.

pub mod deliver;
pub mod keys;
pub mod signing;
pub mod target;

pub use deliver::{Delivered, Deliverer, DeliveryError};
#[cfg(feature = "secrets-manager")]
pub use keys::SecretsManagerKeys;
pub use keys::{FixedKeys, KeyError, KeyLoader, KeySource, MasterKeys, RefreshingKeys};
pub use signing::{WebhookHeaders, WebhookSecret, caller_secret, sign, signature_header};
pub use target::{CallbackError, CallbackPolicy, CallbackUrl};
