//! What a running job last said of its progress: written at a heartbeat,
//! shown by `GET /jobs/{id}` and the console, bounded so a beat's write
//! stays small.

/// What a running job last said of its progress
/// ([`JobContext::progress`](crate::job_types::JobContext::progress)).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// How much is done, from 0 to 1.
    pub fraction: f64,
    /// What the handler says it is doing, at most [`PROGRESS_MESSAGE_BYTES`].
    pub message: String,
    /// When the handler said it (ms since the epoch).
    pub at_ms: i64,
}

/// The longest progress message kept; longer ones are cut.
pub const PROGRESS_MESSAGE_BYTES: usize = 200;

impl Progress {
    /// Progress `fraction` (clamped to 0..=1; not a number is 0) with
    /// `message` cut to [`PROGRESS_MESSAGE_BYTES`] on a char boundary and its
    /// control characters made spaces (so its JSON escapes stay small).
    pub fn new(fraction: f64, message: &str, at_ms: i64) -> Self {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        let mut end = message.len().min(PROGRESS_MESSAGE_BYTES);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            fraction,
            message: message[..end]
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
            at_ms,
        }
    }
}
