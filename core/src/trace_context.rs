//! [`TraceContext`]: a job's place in a distributed trace, as the W3C Trace
//! Context recommendation's `traceparent` header writes it
//! (`00-<trace id>-<parent id>-<flags>`: 32 and 16 lowercase hex digits, and
//! 2 of flags).
//!
//! A job carries one from `POST /jobs` to its webhook: the API reads the
//! caller's `traceparent` header (or starts a trace when there is none, or
//! it is invalid), and stores the context of its own `submit` span on the
//! job's record; the job's SQS messages carry it as the message attribute
//! [`MESSAGE_ATTRIBUTE`], so the worker's spans are its children; the
//! notifier reads it from the record and sends a child of it as the
//! webhook's `traceparent` header. Spans are exported only when an OTLP
//! endpoint is configured ([`crate::spans`]); the context travels, and the
//! logs carry its trace id, either way. `tracestate` is not carried: Jobline
//! adds no vendor state of its own, and the record keeps to a fixed budget
//! ([`TRACE_CONTEXT_BUDGET_BYTES`](crate::limits::TRACE_CONTEXT_BUDGET_BYTES)).
//!
//! Parsing follows the recommendation's rules for a receiver: a header of
//! version `00` is exactly 55 characters; a later version is read as `00`
//! when its first four fields have `00`'s form (and anything after them
//! starts with `-`); version `ff`, an all-zero trace id or parent id, a
//! character that is not lowercase hex, or a wrong length or separator makes
//! the header invalid, and the context is then started anew.

use std::fmt;
use std::str::FromStr;

/// The HTTP header and the SQS message attribute that carry a context.
pub const HEADER: &str = "traceparent";

/// The SQS message attribute (of type `String`) that carries a job's
/// context on each of its messages.
pub const MESSAGE_ATTRIBUTE: &str = "traceparent";

/// The length of a version-`00` `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

/// The `sampled` flag: the caller may have recorded its part of the trace,
/// and so should we.
pub const SAMPLED: u8 = 0x01;

/// The flags a context keeps: `sampled`, and level 2's `random` (the trace
/// id's right 7 bytes are random). Other bits are dropped, as version `00`
/// asks.
const KNOWN_FLAGS: u8 = 0x03;

/// A 16-byte trace id, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// An 8-byte span id, never all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

impl TraceId {
    /// A new random trace id.
    pub fn random() -> Self {
        loop {
            let bytes = fastrand::u128(..).to_be_bytes();
            if bytes != [0; 16] {
                return Self(bytes);
            }
        }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// The id of `bytes`, unless they are all zeros.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0; 16]).then_some(Self(bytes))
    }
}

impl SpanId {
    /// A new random span id.
    pub fn random() -> Self {
        loop {
            let bytes = fastrand::u64(..).to_be_bytes();
            if bytes != [0; 8] {
                return Self(bytes);
            }
        }
    }

    pub fn to_bytes(self) -> [u8; 8] {
        self.0
    }

    /// The id of `bytes`, unless they are all zeros.
    pub fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        (bytes != [0; 8]).then_some(Self(bytes))
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
}

impl fmt::Display for TraceId {
    /// 32 lowercase hex digits: the `traceId` of log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    /// 16 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

/// Why a `traceparent` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceparentError {
    #[error("not of the form 00-<32 hex>-<16 hex>-<2 hex>")]
    Form,
    #[error("version ff is invalid")]
    Version,
    #[error("an all-zero trace id")]
    ZeroTraceId,
    #[error("an all-zero parent id")]
    ZeroParentId,
}

/// A span's context: the trace it belongs to, its own span id (the
/// `parent-id` of a `traceparent` it is sent in: its children's parent),
/// and the trace's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: u8,
}

impl TraceContext {
    /// A new trace: a random trace id and span id, sampled (and `random`,
    /// as its id is).
    pub fn new_root() -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            flags: SAMPLED | 0x02,
        }
    }

    /// `header` read, or a new trace when there is none or it is invalid
    /// (the recommendation's rule: an invalid `traceparent` is ignored).
    pub fn from_header_or_new(header: Option<&str>) -> Self {
        header
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(Self::new_root)
    }

    /// A context of `trace_id`, `span_id` and `flags` (other bits than
    /// `sampled` and `random` dropped).
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: u8) -> Self {
        Self {
            trace_id,
            span_id,
            flags: flags & KNOWN_FLAGS,
        }
    }

    /// A child of this span in the same trace: a new random span id, the
    /// same trace id and flags.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: SpanId::random(),
            ..*self
        }
    }

    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span's id: the `parent-id` of the `traceparent` it is sent in.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the trace is sampled: its spans are recorded and exported.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header, version `00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// `text` as lowercase hex digits into `out`, which it must fill exactly.
fn hex(text: &str, out: &mut [u8]) -> Result<(), TraceparentError> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return Err(TraceparentError::Form);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(TraceparentError::Form),
    };
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(())
}

impl FromStr for TraceContext {
    type Err = TraceparentError;

    /// Reads a `traceparent` value (surrounding whitespace ignored, as an
    /// HTTP field's value may carry it).
    fn from_str(value: &str) -> Result<Self, TraceparentError> {
        let value = value.trim_matches([' ', '\t']);
        if value.len() < TRACEPARENT_LEN || !value.is_ascii() {
            return Err(TraceparentError::Form);
        }
        let mut version = [0u8; 1];
        hex(&value[..2], &mut version)?;
        match version[0] {
            0xff => return Err(TraceparentError::Version),
            // Version 00 is exactly its four fields.
            0x00 if value.len() != TRACEPARENT_LEN => return Err(TraceparentError::Form),
            // A later version may add fields after them, each after a dash.
            _ if value.len() > TRACEPARENT_LEN && value.as_bytes()[TRACEPARENT_LEN] != b'-' => {
                return Err(TraceparentError::Form);
            }
            _ => {}
        }
        let bytes = value.as_bytes();
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(TraceparentError::Form);
        }
        let (mut trace, mut span, mut flags) = ([0u8; 16], [0u8; 8], [0u8; 1]);
        hex(&value[3..35], &mut trace)?;
        hex(&value[36..52], &mut span)?;
        hex(&value[53..55], &mut flags)?;
        let trace_id = TraceId::from_bytes(trace).ok_or(TraceparentError::ZeroTraceId)?;
        let span_id = SpanId::from_bytes(span).ok_or(TraceparentError::ZeroParentId)?;
        Ok(Self::new(trace_id, span_id, flags[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_reads_and_writes_back_the_same() {
        let context: TraceContext = VALID.parse().unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.sampled());
        assert_eq!(context.to_string(), VALID);
        let unsampled: TraceContext = VALID.replace("-01", "-00").parse().unwrap();
        assert!(!unsampled.sampled());
        // Whitespace around the field's value is no part of it.
        assert_eq!(
            format!(" {VALID}\t").parse::<TraceContext>().unwrap(),
            context
        );
    }

    #[test]
    fn invalid_traceparents_are_refused_as_the_recommendation_says() {
        let refused = |value: &str| value.parse::<TraceContext>().unwrap_err();
        assert_eq!(
            refused("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            TraceparentError::ZeroTraceId
        );
        assert_eq!(
            refused("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            TraceparentError::ZeroParentId
        );
        assert_eq!(
            refused("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            TraceparentError::Version
        );
        for bad in [
            "",
            "00",
            // Upper case is not allowed.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // Version 00 has nothing after its flags.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // Wrong separators, lengths, digits.
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01é",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(refused(bad), TraceparentError::Form, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let later: TraceContext =
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-comes"
                .parse()
                .unwrap();
        // Unknown flags are dropped; it is sent on as version 00.
        assert_eq!(later.to_string(), VALID);
        let exact: TraceContext = VALID.replacen("00", "01", 1).parse().unwrap();
        assert_eq!(exact.to_string(), VALID);
    }

    #[test]
    fn missing_or_invalid_headers_start_a_new_sampled_trace() {
        let given = TraceContext::from_header_or_new(Some(VALID));
        assert_eq!(given.to_string(), VALID);
        let fresh = TraceContext::from_header_or_new(None);
        let other = TraceContext::from_header_or_new(Some("nonsense"));
        assert_ne!(fresh.trace_id(), other.trace_id());
        assert!(fresh.sampled() && other.sampled());
        let again: TraceContext = fresh.to_string().parse().unwrap();
        assert_eq!(again, fresh);
        assert_eq!(fresh.to_string().len(), TRACEPARENT_LEN);
    }

    #[test]
    fn the_item_budget_holds_the_attribute_and_its_value() {
        assert_eq!(
            crate::limits::TRACE_CONTEXT_BUDGET_BYTES,
            HEADER.len() + TRACEPARENT_LEN
        );
    }

    #[test]
    fn a_child_is_another_span_of_the_same_trace() {
        let parent: TraceContext = VALID.parse().unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert_eq!(child.flags(), parent.flags());
    }
}
