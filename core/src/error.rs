//! Typed errors of the ports, whatever adapter is behind them.
//!
//! A conditional-check failure is a [`StoreError::Conflict`] carrying the item
//! DynamoDB returned with it (`ReturnValuesOnConditionCheckFailure=ALL_OLD`),
//! so callers decide what a conflict means without a second read.

use crate::job::JobRecord;

/// A boxed source error (an adapter's, such as the AWS SDK's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from a [`crate::store::JobStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write was refused; `current` is the item as it is now
    /// (`None` when there is no item).
    #[error("conditional write refused: the job is not in the expected state")]
    Conflict { current: Option<Box<JobRecord>> },
    /// An item in the table does not have the shape Jobline writes.
    #[error("job item is malformed: {0}")]
    Malformed(String),
    /// DynamoDB refused a write as invalid (`ValidationException`, e.g. an
    /// item over 400 KB): the same write can never succeed.
    #[error("DynamoDB {operation} refused the write as invalid: {reason}")]
    Invalid {
        operation: &'static str,
        reason: String,
    },
    /// DynamoDB could not be reached or refused the request.
    #[error("DynamoDB {operation} failed: {source}")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

/// Errors from a [`crate::queue::JobQueue`].
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// SQS could not be reached or refused the request.
    #[error("SQS {operation} failed: {source}")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// A message body is not a Jobline message.
    #[error("malformed queue message: {0}")]
    Malformed(String),
}

/// Errors reading configuration from the environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} must be set")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}
