//! Where the webhook of a job's final state stands, as the notifier
//! records it on the job.

use std::str::FromStr;

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not yet delivered; the notifier is trying (with backoff).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// The notifier gave up (retries ran out, or the URL was refused).
    Failed,
}

impl DeliveryState {
    /// Whether the notifier is done with the delivery (`delivered` or
    /// `failed`).
    pub fn is_final(self) -> bool {
        self != Self::Pending
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown delivery state {other:?}")),
        }
    }
}

/// The webhook delivery of one final state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The `finishedAt` of the final state it announces: a replayed job
    /// that finishes again gets a delivery of its own.
    pub for_finished_at: i64,
    pub state: DeliveryState,
    /// POSTs made so far.
    pub attempts: u32,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    /// When this was recorded (ms since the epoch).
    pub at_ms: i64,
}
